"""`leadflow up --broker-port A --web-port B --dashboard-port C` listens where the flags say,
over LEADFLOW_*_PORT variables that say otherwise, and its dashboard asks the API on B."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from streams.broker import free_port

pytestmark = pytest.mark.integration


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def _child_env(parent: int, marker: str) -> dict[str, str]:
    """The environment of ``parent``'s child process whose command line holds ``marker``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmdline = (entry / "cmdline").read_bytes()
            raw = (entry / "environ").read_bytes()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == parent and marker.encode() in cmdline:
            return dict(v.split("=", 1) for v in raw.decode().split("\0") if "=" in v)
    return {}


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="reads /proc")
def test_up_listens_on_the_ports_of_its_flags(tmp_path: Path) -> None:
    broker, web, dash = free_port(), free_port(), free_port()
    env = {**os.environ, "LEADFLOW_DATA_DIR": str(tmp_path), "LEADFLOW_CONFIG": "absent.toml",
           # What the flags must win over.
           "LEADFLOW_BROKER_PORT": str(free_port()), "LEADFLOW_WEB_PORT": str(free_port()),
           "LEADFLOW_DASHBOARD_PORT": str(free_port())}
    env.pop("LEADFLOW_BROKER_URL", None)
    out = (tmp_path / "up.out").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "up", "--broker-port", str(broker),
         "--web-port", str(web), "--dashboard-port", str(dash)],
        env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while not (_answers(f"http://127.0.0.1:{web}/v1/health")
                   and _answers(f"http://127.0.0.1:{dash}/_stcore/health")):
            assert proc.poll() is None, (tmp_path / "up.out").read_text()
            assert time.monotonic() < deadline, (tmp_path / "up.out").read_text()
            time.sleep(0.5)
        with socket.create_connection(("127.0.0.1", broker), timeout=5):
            pass
        for marker in ("streamlit", "worker"):
            child = _child_env(proc.pid, marker)
            assert child["LEADFLOW_WEB_PORT"] == str(web), marker
            assert child["LEADFLOW_BROKER_PORT"] == str(broker), marker
            assert child["LEADFLOW_DASHBOARD_PORT"] == str(dash), marker
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()
    printed = (tmp_path / "up.out").read_text()
    assert proc.returncode == 0, printed
    assert f"127.0.0.1:{broker}" in printed and f"http://127.0.0.1:{dash}" in printed
    assert f"leadflow trace LEAD_ID --url http://127.0.0.1:{web}" in printed
