"""`leadflow up` has a flag for every port it opens; the flags reach the settings, and the
worker and dashboard processes through their LEADFLOW_* variables; a taken port is a
sentence naming the flag to use, not a traceback."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from streams import up
from streams.broker import free_port
from streams.cli import main
from streams.settings import Settings

FLAGS = {"--dashboard-port": "dashboard_port", "--web-port": "web_port",
         "--broker-port": "broker_port"}


@pytest.fixture
def listening() -> Iterator[int]:
    """A port something already listens on (as a second dashboard on 8501 would)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def free(**ports: int) -> Settings:
    base = {"broker_port": free_port(), "web_port": free_port(), "dashboard_port": free_port()}
    return Settings(**{**base, **ports})


def test_help_lists_a_flag_per_port() -> None:
    done = CliRunner().invoke(main, ["up", "--help"])
    assert done.exit_code == 0
    for flag, name in FLAGS.items():
        assert flag in done.output and f"LEADFLOW_{name.upper()}" in done.output


def test_the_flags_reach_the_settings_run_up_gets(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    got: list[Settings] = []

    def run_up(settings: Settings, **kwargs: Any) -> int:
        got.append(settings)
        return 0

    monkeypatch.setattr(up, "run_up", run_up)
    env = {"LEADFLOW_CONFIG": str(tmp_path / "absent.toml"), "LEADFLOW_DASHBOARD_PORT": "8600",
           "LEADFLOW_WEB_PORT": "8601", "LEADFLOW_BROKER_PORT": "8602"}
    done = CliRunner().invoke(main, ["up", "--dashboard-port", "8502", "--web-port", "8081",
                                     "--broker-port", "9093"], env=env)
    assert done.exit_code == 0, done.output
    assert (got[0].dashboard_port, got[0].web_port, got[0].broker_port) == (8502, 8081, 9093)
    # Without a flag, the variable (or the default) stays in force.
    done = CliRunner().invoke(main, ["up", "--web-port", "8081"], env=env)
    assert (got[1].dashboard_port, got[1].web_port, got[1].broker_port) == (8600, 8081, 8602)
    done = CliRunner().invoke(main, ["up", "--dashboard-port", "0"], env=env)
    assert done.exit_code == 2 and got[2:] == []


def test_the_children_load_the_ports_in_force(tmp_path: Path) -> None:
    s = Settings().replace(dashboard_port=8502, web_port=8081, broker_port=9093)
    env = up.port_env(s)
    assert env == {"LEADFLOW_DASHBOARD_PORT": "8502", "LEADFLOW_WEB_PORT": "8081",
                   "LEADFLOW_BROKER_PORT": "9093"}
    # What the worker's and the dashboard's Settings.load() make of that environment.
    child = Settings.load(env=env, toml_path=tmp_path / "absent.toml")
    assert (child.dashboard_port, child.web_port, child.broker_port) == (8502, 8081, 9093)


@pytest.mark.parametrize("flag", list(FLAGS))
def test_a_taken_port_names_its_flag(flag: str, listening: int) -> None:
    problem = up.port_problem(free(**{FLAGS[flag]: listening}))
    assert problem is not None and problem.startswith("PORT_IN_USE")
    assert flag in problem and str(listening) in problem
    assert up.port_problem(free()) is None


def test_two_servers_on_one_port() -> None:
    port = free_port()
    problem = up.port_problem(free(web_port=port, dashboard_port=port))
    assert problem is not None and "--dashboard-port" in problem


def test_an_external_kafka_needs_no_broker_port(listening: int) -> None:
    s = free(broker_port=listening).replace(broker_url="kafka://k1:9092")
    assert up.port_problem(s) is None


def test_up_on_a_taken_dashboard_port_says_so(listening: int, tmp_path: Path) -> None:
    env = {"LEADFLOW_CONFIG": str(tmp_path / "absent.toml"), "LEADFLOW_DATA_DIR": str(tmp_path),
           "LEADFLOW_BROKER_PORT": str(free_port()), "LEADFLOW_WEB_PORT": str(free_port())}
    done = CliRunner().invoke(main, ["up", "--dashboard-port", str(listening)], env=env)
    assert done.exit_code == 2
    assert "--dashboard-port" in done.stderr and "Traceback" not in done.output
    assert not (tmp_path / "worker.log").exists()  # nothing was started
