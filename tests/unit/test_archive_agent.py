"""The archive consumer is part of every worker unless LEADFLOW_ARCHIVE turns it off.

What it does with records is proved through the embedded broker in
tests/integration/test_replay.py."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from streams.app import build_app
from streams.settings import Settings


@pytest.mark.parametrize("setting", ["true", "false"])
def test_the_archive_setting_starts_or_leaves_out_the_consumer(tmp_path: Path,
                                                               setting: str) -> None:
    settings = Settings.load(env={"LEADFLOW_ARCHIVE": setting}, data_dir=str(tmp_path),
                             app_id=f"t-{uuid.uuid4().hex}")
    app = build_app(settings, api=False)
    tasks = {task.__name__ for task in app._app_tasks}
    assert ("archive_topics" in tasks) is (setting == "true")
    assert not (tmp_path / "archive").exists()  # nothing happens before the worker starts
