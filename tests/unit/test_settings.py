from __future__ import annotations

from pathlib import Path

from streams.settings import Settings


def test_defaults_work_on_a_laptop(tmp_path: Path) -> None:
    s = Settings.load(env={}, toml_path=tmp_path / "absent.toml")
    assert s.embedded and s.bootstrap == "127.0.0.1:9092"
    assert s.fetch_max_wait_ms == 20 and s.session_timeout_s == 6.0
    assert s.faust_broker == "leadflow://127.0.0.1:9092"


def test_environment_wins_over_the_file(tmp_path: Path) -> None:
    toml = tmp_path / "leadflow.toml"
    toml.write_text('[leadflow]\nweb_port = 9000\nstore = "rocksdb"\n[sla]\nfirst_touch_h = 24\n')
    s = Settings.load(env={"LEADFLOW_WEB_PORT": "9100", "LEADFLOW_WEBHOOK_SECRETS": "a, b"},
                      toml_path=toml)
    assert (s.web_port, s.store, s.webhook_secrets) == (9100, "rocksdb", ("a", "b"))
    assert s.extra["sla"] == {"first_touch_h": 24}


def test_a_real_kafka_gets_kafka_timeouts_unless_set(tmp_path: Path) -> None:
    env = {"LEADFLOW_BROKER_URL": "kafka://k1:9092,kafka://k2:9093"}
    s = Settings.load(env=env, toml_path=tmp_path / "absent.toml")
    assert not s.embedded and s.bootstrap == "k1:9092,k2:9093"
    assert s.faust_broker == "leadflow://k1:9092;leadflow://k2:9093"
    assert (s.fetch_max_wait_ms, s.session_timeout_s) == (500, 30.0)
    env["LEADFLOW_FETCH_MAX_WAIT_MS"] = "50"
    assert Settings.load(env=env, toml_path=tmp_path / "absent.toml").fetch_max_wait_ms == 50


def test_the_repo_default_file_parses() -> None:
    root = Path(__file__).resolve().parents[2]
    s = Settings.load(env={}, toml_path=root / "leadflow.toml")
    assert s.web_port == 8080 and s.max_clock_skew_s == 86400
