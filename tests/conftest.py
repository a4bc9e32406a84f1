"""Shared fixtures: the embedded broker on a free port and a worker process, as a user runs them."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from streams.broker import EmbeddedBroker, free_port
from streams.settings import Settings
from streams.views import get_json

# Speed is measured by `leadflow bench`, never asserted in a test: Hypothesis's per-example
# deadline (200 ms) only fails a property when the shared CI machine stalls (it did: 274 ms
# once, 1.75 ms on the retry).
hypothesis_settings.register_profile("leadflow", deadline=None)
hypothesis_settings.load_profile("leadflow")

EXAMPLES = Path(__file__).resolve().parents[2] / "shared" / "examples"
SECRET = "whsec_dGVzdC1zZWNyZXQtZm9yLWxlYWRmbG93LXRlc3Rz"
# The tests' API key, of every scope: every worker of start_worker accepts it, and clients
# that read LEADFLOW_API_KEY (get_json, send_http, `leadflow trace`, `leadflow up`) send it.
API_KEY = "lfk_dGVzdHMtb2YtbGVhZGZsb3ctYWNjZXNzLWtleS0wMQ"
API_KEYS = f"tests:ingest+read+admin:{hashlib.sha256(API_KEY.encode()).hexdigest()}"


@pytest.fixture(autouse=True, scope="session")
def _clients_send_the_test_key() -> Iterator[None]:
    old = os.environ.get("LEADFLOW_API_KEY")
    os.environ["LEADFLOW_API_KEY"] = API_KEY
    yield
    if old is None:
        os.environ.pop("LEADFLOW_API_KEY", None)
    else:
        os.environ["LEADFLOW_API_KEY"] = old


@dataclass
class Worker:
    settings: Settings
    base_url: str
    proc: subprocess.Popen[bytes]
    log: Path


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    """A fresh broker per test module, so modules never see each other's events."""
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    # One schema registry for everything that shares this broker, as in production.
    registry = log.parent / "schemas.json"
    os.environ["LEADFLOW_SCHEMA_REGISTRY_FILE"] = str(registry)
    with EmbeddedBroker(0, log) as b:
        yield b
    os.environ.pop("LEADFLOW_SCHEMA_REGISTRY_FILE", None)


@pytest.fixture
def registry_path(broker: EmbeddedBroker) -> Path:
    return Path(os.environ["LEADFLOW_SCHEMA_REGISTRY_FILE"])


def start_worker(broker: EmbeddedBroker, data_dir: Path, **env: str) -> Worker:
    port = free_port()
    environ = {
        **os.environ,
        "LEADFLOW_BROKER_PORT": str(broker.port),
        "LEADFLOW_WEB_PORT": str(port),
        "LEADFLOW_DATA_DIR": str(data_dir),
        "LEADFLOW_APP_ID": f"leadflow-test-{uuid.uuid4().hex[:8]}",
        "LEADFLOW_WEBHOOK_SECRETS": SECRET,
        "LEADFLOW_API_KEYS": API_KEYS,
        # Tests send as fast as they can, with a key or as a vendor; the limiter's own tests
        # (test_access_worker.py) set their limits.
        "LEADFLOW_RATE_LIMIT_KEY": "0", "LEADFLOW_RATE_LIMIT_ADDRESS": "0",
        "LEADFLOW_LOG_LEVEL": "info",
        **env,
    }
    settings = Settings.load(env=environ)
    data_dir.mkdir(parents=True, exist_ok=True)
    log = data_dir / "worker.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "worker"],
        env=environ, stdout=log.open("ab"), stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited early:\n{log.read_text()[-4000:]}")
        try:
            status, _ = get_json(f"{base}/v1/health", timeout=2)
            if status == 200:
                return Worker(settings, base, proc, log)
        except OSError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise RuntimeError(f"worker not healthy in 90 s:\n{log.read_text()[-4000:]}")


def stop_worker(worker: Worker, timeout: float = 30) -> None:
    worker.proc.terminate()
    try:
        worker.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        worker.proc.kill()
        worker.proc.wait()


@pytest.fixture(scope="module")
def worker(broker: EmbeddedBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Worker]:
    w = start_worker(broker, tmp_path_factory.mktemp("worker"))
    yield w
    stop_worker(w)


def wait_for(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    """Poll ``check`` until it returns something truthy (returned), else fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if result := check():
            return result
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout:.0f} s")
