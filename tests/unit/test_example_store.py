"""The example store: append-only JSON lines, the latest line of a lead wins, crash-safe."""

from __future__ import annotations

from pathlib import Path

from models.examples import ExampleStore

DAY = 86_400_000
NOW = 1_795_000_000_000


def ex(lead_id: str, label: int | None, n: int = 0) -> dict:
    return {"lead_id": lead_id, "label": label, "n": n}


def test_the_latest_line_of_a_lead_wins_and_counts_add_up(tmp_path: Path) -> None:
    store = ExampleStore(tmp_path)
    assert store.read() == [] and store.counts() == {"appended": 0, "labelled": 0}
    assert store.append([ex("a", None), ex("b", 1)], now_ms=NOW) == 2
    store.append([ex("a", 0, n=1)], now_ms=NOW + DAY)  # a's disposition, the next day
    store.append([], now_ms=NOW)
    assert store.read() == [ex("b", 1), ex("a", 0, n=1)]
    assert store.counts() == {"appended": 3, "labelled": 2}
    assert len(store.segments()) == 2


def test_a_line_cut_short_by_a_crash_is_skipped(tmp_path: Path) -> None:
    store = ExampleStore(tmp_path)
    store.append([ex("a", 1)], now_ms=NOW)
    with store.segments()[0].open("ab") as out:
        out.write(b'{"lead_id": "b", "lab')
    store.append([ex("c", 0)], now_ms=NOW + DAY)
    assert [e["lead_id"] for e in store.read()] == ["a", "c"] and store.skipped == 1


def test_compaction_keeps_the_latest_lines_of_closed_days_only(tmp_path: Path) -> None:
    store = ExampleStore(tmp_path)
    for day in range(4):  # four days of the same two leads, then today
        store.append([ex("a", None, n=day), ex("b", day % 2, n=day)], now_ms=NOW + day * DAY)
    before = store.read()
    dropped = store.compact(now_ms=NOW + 4 * DAY)  # days 0-2 are closed; day 3 is yesterday
    assert dropped == 4 and len(store.segments()) == 2
    assert store.read() == before
    assert store.compact(now_ms=NOW + 4 * DAY) == 0  # nothing left to do
