"""The archive's files: columns from the Avro contracts, atomic writes, lazy scans."""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import fastavro
import polars as pl
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from streams import schemas, topics
from streams.archive import layout
from streams.codec import Codec
from streams.registry import FileRegistry
from streams.settings import Settings

T0 = datetime(2024, 3, 1, 23, 59, 59, 999000, tzinfo=UTC)


# -- random valid records, built from the Avro schema ------------------------------------------


def _strategy(schema: Any, names: dict[str, Any]) -> st.SearchStrategy[Any]:
    if isinstance(schema, list):
        return st.one_of(*(_strategy(b, names) for b in schema))
    if isinstance(schema, str):
        if schema in names:
            return _strategy(names[schema], names)
        return _PRIMITIVES[schema]
    kind = schema["type"]
    if isinstance(kind, (dict, list)):
        return _strategy(kind, names)
    if kind == "record":
        names[schema["name"]] = schema
        return st.fixed_dictionaries(
            {f["name"]: _strategy(f["type"], names) for f in schema["fields"]}
        )
    if kind == "enum":
        names[schema["name"]] = schema
        return st.sampled_from(schema["symbols"])
    if kind == "array":
        return st.lists(_strategy(schema["items"], names), max_size=3)
    if kind == "map":
        values = schema["values"]
        # JSON has no infinity: in map values it is archived as null (see the test below);
        # the contract refuses a non-finite custom attribute, so none reaches the archive.
        finite = st.floats(allow_infinity=False, allow_nan=False)
        if values == "double":
            inner = finite
        elif isinstance(values, list) and "double" in values:
            inner = st.one_of([finite if v == "double" else _strategy(v, names) for v in values])
        else:
            inner = _strategy(values, names)
        return st.dictionaries(st.text(max_size=6), inner, max_size=3)
    logical = schema.get("logicalType")
    if logical == "uuid":
        return st.uuids().map(str)
    if logical == "timestamp-millis":
        return st.datetimes(
            min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1),
            timezones=st.just(UTC),
        ).map(lambda d: d.replace(microsecond=d.microsecond // 1000 * 1000))
    return _PRIMITIVES[kind]


_PRIMITIVES: dict[str, st.SearchStrategy[Any]] = {
    "null": st.none(),
    "boolean": st.booleans(),
    "int": st.integers(-(2**31), 2**31 - 1),
    "long": st.integers(-(2**63), 2**63 - 1),
    # NaN is left out only because NaN != NaN would fail the comparison, not the archive.
    "float": st.floats(width=32, allow_nan=False),
    "double": st.floats(allow_nan=False),
    "bytes": st.binary(max_size=8),
    "string": st.text(max_size=8),
}


def _as_archived(value: Any, schema: Any, names: dict[str, Any]) -> Any:
    """What the archive reads back for a decoded Avro value: maps come back as JSON text."""
    if value is None:
        return None
    if isinstance(schema, list):
        branches = [b for b in schema if b != "null"]
        return _as_archived(value, branches[0], names) if len(branches) == 1 else value
    if isinstance(schema, str):
        return _as_archived(value, names[schema], names) if schema in names else value
    kind = schema["type"]
    if isinstance(kind, (dict, list)):
        return _as_archived(value, kind, names)
    if kind == "record":
        names[schema["name"]] = schema
        return {f["name"]: _as_archived(value[f["name"]], f["type"], names)
                for f in schema["fields"]}
    if kind == "enum":
        names[schema["name"]] = schema
    if kind == "array":
        return [_as_archived(v, schema["items"], names) for v in value]
    if kind == "map":
        return {k: _as_archived(v, schema["values"], names) for k, v in value.items()}
    return value


def _map_fields(record_name: str) -> set[str]:
    def is_map(t: Any) -> bool:
        if isinstance(t, list):
            return any(is_map(b) for b in t)
        return isinstance(t, dict) and t.get("type") == "map"

    return {f["name"] for f in schemas.latest(record_name)["fields"] if is_map(f["type"])}


def _records(record_name: str) -> st.SearchStrategy[list[dict[str, Any]]]:
    return st.lists(_strategy(schemas.latest(record_name), {}), min_size=1, max_size=5)


@pytest.mark.parametrize("topic", sorted(layout.ARCHIVED))
def test_random_records_come_back_with_the_same_values(topic: str) -> None:
    record_name = layout.ARCHIVED[topic]
    raw = schemas.latest(record_name)
    maps = _map_fields(record_name)

    @hsettings(max_examples=25, suppress_health_check=[HealthCheck.too_slow])
    @given(records=_records(record_name))
    def roundtrip(records: list[dict[str, Any]]) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            codec = Codec(FileRegistry(Path(tmp) / "schemas.json"))
            rows = []
            for offset, record in enumerate(records):
                value = codec.encode(f"{topic}-value", record_name, record)
                decoded = codec.decode(value, record_name)  # as the archive consumer gets it
                rows.append({
                    **decoded, "_topic": topic, "_partition": 2, "_offset": offset,
                    "_key": decoded.get("lead_id"), "_timestamp": T0, "_value": value,
                    "_schema_id": int.from_bytes(value[1:5], "big"),
                })
            root = Path(tmp) / "archive"
            layout.write_batch(root, record_name, rows, source=f"{topic}-2-0-{len(rows) - 1}")
            back = layout.scan(root, record_name).sort("_offset").collect()
            assert back.height == len(rows)
            for row, got in zip(rows, back.iter_rows(named=True), strict=True):
                for name in maps:
                    got[name] = None if got[name] is None else json.loads(got[name])
                for field in raw["fields"]:
                    want = _as_archived(row[field["name"]], field["type"], {})
                    assert got[field["name"]] == want, field["name"]
                for name in ("_topic", "_partition", "_offset", "_key", "_value",
                             "_schema_id", "_timestamp"):
                    assert got[name] == row[name], name
                event_time = row[layout.columns.event_time_column(record_name)]
                assert got["_event_time"] == event_time
                assert got["date"] == event_time.date()

    roundtrip()


# -- the layout ---------------------------------------------------------------------------------


def _routed(i: int, at: datetime) -> dict[str, Any]:
    record = schemas.samples(schemas.latest("LeadRouted"))[1]
    return {
        **record, "occurred_at": at, "_topic": topics.ROUTED.name, "_partition": 0,
        "_offset": i, "_key": record["lead_id"], "_timestamp": at + timedelta(hours=5),
        "_value": b"\x00\x00\x00\x00\x01" + bytes([i]), "_schema_id": 1,
    }


def test_rows_are_split_by_utc_day_of_event_time(tmp_path: Path) -> None:
    rows = [_routed(0, T0), _routed(1, T0 + timedelta(milliseconds=1))]
    written = layout.write_batch(tmp_path, "LeadRouted", rows, source="leads.routed-0-0-1")
    assert [p.relative_to(tmp_path).as_posix() for p in written] == [
        "LeadRouted/date=2024-03-01/leads.routed-0-0-1.parquet",
        "LeadRouted/date=2024-03-02/leads.routed-0-0-1.parquet",
    ]
    back = layout.scan(tmp_path, "LeadRouted").filter(pl.col("date") == date(2024, 3, 2))
    assert back.select("_offset").collect().to_series().to_list() == [1]
    # Nothing but the final files: the temporary ones were renamed away.
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        "leads.routed-0-0-1.parquet", "leads.routed-0-0-1.parquet",
    ]


def test_rewriting_the_same_source_replaces_the_file(tmp_path: Path) -> None:
    rows = [_routed(i, T0 - timedelta(hours=1)) for i in range(3)]
    layout.write_batch(tmp_path, "LeadRouted", rows, source="leads.routed-0-0-2")
    layout.write_batch(tmp_path, "LeadRouted", rows, source="leads.routed-0-0-2")
    assert layout.scan(tmp_path, "LeadRouted").collect().height == 3


def test_dot_files_are_never_read(tmp_path: Path) -> None:
    layout.write_batch(tmp_path, "LeadRouted", [_routed(0, T0)], source="a")
    day = layout.day_dir(tmp_path, "LeadRouted", T0.date())
    (day / ".b.parquet.123.tmp").write_bytes(b"PAR1 half written")
    (day / ".c.parquet").write_bytes(b"PAR1 half written")
    assert layout.scan(tmp_path, "LeadRouted").collect().height == 1


def test_undecodable_record_keeps_its_envelope_and_kafka_time(tmp_path: Path) -> None:
    row = {"_topic": topics.LEADS.name, "_partition": 1, "_offset": 7, "_key": None,
           "_timestamp": T0, "_value": b"not avro", "_schema_id": None}
    layout.write_batch(tmp_path, "LeadCaptured", [row], source="leads.captured-1-7-7")
    got = layout.scan(tmp_path, "LeadCaptured").collect().row(0, named=True)
    assert got["_value"] == b"not avro" and got["_event_time"] == T0
    assert got["event_id"] is None and got["enrichment"] is None and got["date"] == T0.date()


def test_event_time_is_the_decision_time_of_each_record() -> None:
    event_time = layout.columns.event_time_column
    assert event_time("SlaEvaluated") == "evaluated_at"  # occurred_at is the worker's clock
    assert event_time("DeadLetter") == "observed_at"
    assert {event_time(r) for r in layout.ARCHIVED.values()} == {
        "occurred_at", "evaluated_at", "observed_at"}


def test_empty_archive_scans_with_the_same_columns(tmp_path: Path) -> None:
    empty = layout.scan(tmp_path, "LeadRouted")
    assert empty.collect().height == 0
    layout.write_batch(tmp_path, "LeadRouted", [_routed(0, T0)], source="a")
    assert layout.scan(tmp_path, "LeadRouted").collect_schema() == empty.collect_schema()
    assert list(empty.collect_schema())[-1] == "date"
    assert dict(layout.schema("LeadRouted")) == {
        k: v for k, v in empty.collect_schema().items() if k != "date"}


def test_files_from_before_a_field_was_added_read_with_nulls(tmp_path: Path) -> None:
    layout.write_batch(tmp_path, "LeadRouted", [_routed(0, T0)], source="new")
    old = layout.day_dir(tmp_path, "LeadRouted", T0.date()) / "old.parquet"
    frame = layout.scan(tmp_path, "LeadRouted").collect().drop("date", "correlation_id")
    frame.with_columns(pl.col("_offset") + 1).write_parquet(old)
    back = layout.scan(tmp_path, "LeadRouted").sort("_offset").collect()
    assert back["correlation_id"].to_list() == [_routed(0, T0)["correlation_id"], None]


def test_write_frame_converts_types_and_computes_event_time(tmp_path: Path) -> None:
    frame = pl.DataFrame({
        **{name: [None] for name in layout.schema("SlaEvaluated")},
        "_topic": [topics.SLA.name], "_partition": [0], "_offset": [5],
        "_timestamp": [datetime(2024, 5, 1, tzinfo=UTC)],
        "evaluated_at": [datetime(2024, 4, 30, 12)],  # naive, microseconds: cast to UTC ms
    }).drop("_event_time")
    (path,) = layout.write_frame(tmp_path, "SlaEvaluated", frame, source="gen-0")
    assert path.parent.name == "date=2024-04-30"
    got = layout.scan(tmp_path, "SlaEvaluated").collect()
    assert got["_event_time"].to_list() == [datetime(2024, 4, 30, 12, tzinfo=UTC)]


def test_write_frame_refuses_other_columns_and_unsafe_names(tmp_path: Path) -> None:
    good = layout.scan(tmp_path, "LeadRouted").collect().drop("date")
    with pytest.raises(ValueError, match=r"missing \['_value'\], unexpected \['owner'\]"):
        layout.write_frame(tmp_path, "LeadRouted", good.drop("_value").with_columns(
            pl.lit(None).alias("owner")), source="x")
    for bad in ("../x", ".hidden", "a/b", ""):
        with pytest.raises(ValueError, match="cannot be a file name"):
            layout.write_frame(tmp_path, "LeadRouted", good, source=bad)


def test_archive_root_defaults_under_the_data_dir(tmp_path: Path) -> None:
    assert layout.archive_root(Settings(data_dir=str(tmp_path))) == tmp_path / "archive"
    assert layout.archive_root(Settings(archive_dir="/srv/a")) == Path("/srv/a")


def test_every_inbound_and_outbound_topic_is_archived() -> None:
    expected = {t.name: t.record for t in (*topics.INBOUND, *topics.OUTBOUND)}
    assert expected == layout.ARCHIVED
    for record_name in layout.ARCHIVED.values():  # every contract maps to columns
        fastavro.parse_schema(schemas.latest(record_name))
        assert list(layout.schema(record_name))[:8] == list(layout.columns.ENVELOPE)


def test_maps_are_json_text_and_non_finite_numbers_in_them_null(tmp_path: Path) -> None:
    record = {**schemas.samples(schemas.latest("ModelPublished"))[0],
              "weights": {"b": 1.5, "a": float("inf")}, "metrics": {}}
    row = {**record, "_topic": topics.MODELS.name, "_partition": 0, "_offset": 0,
           "_key": "scoring", "_timestamp": T0, "_value": b"", "_schema_id": None}
    layout.write_batch(tmp_path, "ModelPublished", [row], source="m")
    got = layout.scan(tmp_path, "ModelPublished").collect().row(0, named=True)
    assert (got["weights"], got["metrics"]) == ('{"a":null,"b":1.5}', "{}")
