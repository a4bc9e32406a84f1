"""A small generated archive shared by the dashboard tests, and the environment that points
the app at it (no worker: the Pipeline page must say so)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from dashboard import generate
from streams.broker import free_port

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"


@dataclass
class Small:
    root: Path
    data_dir: Path
    frames: dict[str, pl.DataFrame]


@pytest.fixture(scope="session")
def small(tmp_path_factory: pytest.TempPathFactory) -> Small:
    base = tmp_path_factory.mktemp("dashboard")
    frames = generate.generate(1500, seed=11, days=60)
    root = base / "archive"
    generate.write(root, frames)
    return Small(root, base, frames)


@pytest.fixture
def app_env(small: Small, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Path]:
    """Settings for the app under test; yields where its audit log goes."""
    audit = tmp_path / "audit.jsonl"
    monkeypatch.setenv("LEADFLOW_ARCHIVE_DIR", str(small.root))
    monkeypatch.setenv("LEADFLOW_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("LEADFLOW_DASHBOARD_REFRESH_S", "0")
    monkeypatch.setenv("LEADFLOW_DASHBOARD_AUDIT_LOG", str(audit))
    # Nothing listens there: the Pipeline page has no worker to ask.
    monkeypatch.setenv("LEADFLOW_DASHBOARD_WORKER_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.delenv("LEADFLOW_DASHBOARD_PII_VIEWERS", raising=False)
    monkeypatch.delenv("LEADFLOW_DASHBOARD_IDENTITY_HEADER", raising=False)
    yield audit
