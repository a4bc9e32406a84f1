"""Agent tests build one app per test against a broker of their own.

With one broker per module, an app's producer sometimes sees no leader for a partition of a
topic an earlier test's app created, and its batch waits forever: the test's assertions pass,
then stopping the producer hangs (seen as a 300 s teardown timeout). Not yet explained; the
workers' own integration tests (restarts, two workers on one broker) do not show it."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from streams.app import LeadflowApp, build_app
from streams.broker import EmbeddedBroker
from streams.settings import Settings


@pytest.fixture
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedBroker]:
    log = tmp_path_factory.mktemp("broker") / "broker.log"
    os.environ["LEADFLOW_SCHEMA_REGISTRY_FILE"] = str(log.parent / "schemas.json")
    with EmbeddedBroker(0, log) as b:
        yield b
    os.environ.pop("LEADFLOW_SCHEMA_REGISTRY_FILE", None)


@pytest.fixture
async def app(broker: EmbeddedBroker, tmp_path: Any) -> AsyncIterator[LeadflowApp]:
    """An app with the real producer: dead letters and changelogs reach the broker."""
    settings = Settings.load(
        broker_port=broker.port, data_dir=str(tmp_path), app_id=f"t-{uuid.uuid4().hex}"
    )
    app = build_app(settings, api=False)
    app.finalize()
    await app.producer.start()
    yield app
    await app.producer.stop()
