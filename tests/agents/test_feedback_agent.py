"""The feedback agent through agent.test_context(): training examples into the store."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from models.examples import ExampleStore
from streams import topics
from streams.app import LeadflowApp, build_app
from streams.core import feedback
from streams.core.features import new_features
from streams.settings import Settings

T0 = 1_795_000_000_000


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[LeadflowApp]:
    settings = Settings.load(data_dir=str(tmp_path), app_id=f"t-{uuid.uuid4().hex}")
    app = build_app(settings, api=False)
    app.finalize()
    yield app


def example(lead_id: str, label: int | None) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()), "lead_id": lead_id, "handed_over_at": T0,
        "disposed_at": None if label is None else T0 + 1, "outcome": None if label is None
        else "SQL", "label": label, "reason": None, "campaign_id": "cmp-1",
        "features": {**new_features(), "profile_at": T0}, "score": 61,
        "model_version": "points-x", "scored_at": T0, "historic": False, "occurred_at": T0,
    }


async def test_examples_are_stored_and_the_latest_of_a_lead_wins(app: LeadflowApp) -> None:
    store = ExampleStore(app.settings.data_path / "examples")
    lead = str(uuid.uuid4())
    sent = [example(lead, None), example(str(uuid.uuid4()), 0), example(lead, 1)]
    async with app.agents["feedback"].test_context() as ctx:
        for e in sent:
            value = app.codec.encode(topics.EXAMPLES.subject, topics.EXAMPLES.record,
                                     feedback.record_of(e))
            await ctx.put(value, key=e["lead_id"].encode())
        for _ in range(200):
            if store.counts()["appended"] == 3:
                break
            await asyncio.sleep(0.02)
    assert store.counts() == {"appended": 3, "labelled": 2}
    assert sorted(store.read(), key=lambda e: e["label"]) == sorted(sent[1:],
                                                                    key=lambda e: e["label"])
    assert app.stats.handoff["examples"] == 3
