"""API keys, token buckets and the endpoint table: the pure parts of streams.access."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.access import keys, rules
from streams.access.ratelimit import Limiter, retry_after
from streams.app import build_app
from streams.errors import LeadflowError
from streams.settings import Settings


def test_a_new_key_is_random_prefixed_and_configured_only_by_its_hash() -> None:
    a, b = keys.new_key(), keys.new_key()
    assert a != b and re.fullmatch(r"lfk_[A-Za-z0-9_-]{43}", a)
    line = keys.configured("forms", ["ingest"], a).line()
    assert a not in line and a[4:] not in line
    assert line == f"forms:ingest:{keys.digest(a)}"
    parsed = keys.parse(line)
    assert (parsed.id, parsed.scopes) == ("forms", frozenset({"ingest"}))


def test_the_ring_finds_a_key_by_its_hash_only() -> None:
    a, b = keys.new_key(), keys.new_key()
    ring = keys.KeyRing([keys.configured("ops", ["read", "admin"], a).line(),
                         keys.configured("forms-2027", ["ingest"], b).line()])
    assert ring.find(a).id == "ops" and ring.find(a).scopes == {"read", "admin"}
    assert ring.find(b).id == "forms-2027"
    assert ring.find("") is None and ring.find(a + "x") is None and ring.find(a[:-1]) is None
    assert [k.id for k in ring] == ["forms-2027", "ops"]


@pytest.mark.parametrize(("line", "says"), [
    ("lfk_abc", "is not ID:SCOPE"),
    ("ops:read:" + "0" * 63, "not 64 hex"),
    ("ops:read:" + "g" * 64, "not 64 hex"),
    ("ops:write:" + "0" * 64, "not write"),
    ("ops::" + "0" * 64, "scopes must be"),
    ("o p:read:" + "0" * 64, "bad key id"),
])
def test_a_bad_line_says_what_is_wrong_without_a_secret(line: str, says: str) -> None:
    with pytest.raises(LeadflowError) as err:
        keys.KeyRing([line])
    assert says in err.value.detail and err.value.field == "api_keys"


def test_ids_and_hashes_are_unique() -> None:
    a = keys.new_key()
    with pytest.raises(LeadflowError, match="twice"):
        keys.KeyRing([keys.configured("x", ["read"], a).line(),
                      keys.configured("x", ["read"], keys.new_key()).line()])
    with pytest.raises(LeadflowError, match="has the hash"):
        keys.KeyRing([keys.configured("x", ["read"], a).line(),
                      keys.configured("y", ["admin"], a).line()])


# -- token buckets ----------------------------------------------------------------------------

gaps = st.lists(st.floats(min_value=0, max_value=2, allow_nan=False), min_size=1, max_size=200)


@given(gaps=gaps, rate=st.floats(0.5, 50), burst=st.integers(1, 20))
def test_a_bucket_never_allows_more_than_burst_plus_rate_times_time(
    gaps: list[float], rate: float, burst: int
) -> None:
    limiter, now, allowed = Limiter(rate, burst), 0.0, []
    for gap in gaps:
        now += gap
        if limiter.take("k", now) == 0.0:
            allowed.append(now)
    for i, start in enumerate(allowed):
        for j in range(i, len(allowed)):
            assert j - i + 1 <= burst + rate * (allowed[j] - start) + 1e-6


@given(gaps=gaps, rate=st.floats(0.5, 50), burst=st.integers(1, 20))
def test_waiting_the_answer_out_always_gets_a_token(
    gaps: list[float], rate: float, burst: int
) -> None:
    limiter, now = Limiter(rate, burst), 0.0
    for gap in gaps:
        now += gap
        wait = limiter.take("k", now)
        if wait > 0:
            assert limiter.take("k", now + wait + 1e-9) == 0.0
            now += wait + 1e-9


def test_a_burst_then_the_rate() -> None:
    limiter = Limiter(rate=2, burst=3)
    assert [limiter.take("a", 0.0) for _ in range(4)] == [0.0, 0.0, 0.0, 0.5]
    assert limiter.take("b", 0.0) == 0.0  # each name its own bucket
    assert limiter.take("a", 0.5) == 0.0 and limiter.take("a", 0.5) == 0.5
    assert retry_after(0.5) == "1" and retry_after(1.01) == "2" and retry_after(0) == "1"


def test_rate_zero_is_no_limit_and_memory_is_bounded() -> None:
    off = Limiter(rate=0, burst=1)
    assert all(off.take("a", 0.0) == 0.0 for _ in range(1000)) and len(off) == 0
    small = Limiter(rate=1, burst=1, max_buckets=3)
    for i in range(10):
        small.take(f"addr-{i}", 0.0)
    assert len(small) == 3


# -- the endpoint table -----------------------------------------------------------------------

def test_what_each_endpoint_needs() -> None:
    table = rules.Endpoints()
    assert table.need("/v1/health") == table.need("/v1/openapi.json") == rules.OPEN
    assert table.need("/v1/leads") == rules.INGEST == table.need("/v1/webhooks/crm")
    assert table.need("/v1/leads/{lead_id}/trace") == rules.READ == table.need("/metrics")
    # Undeclared routes are closed: admin erasure, Faust's raw table views.
    assert table.need("/v1/admin/erasures") == rules.ADMIN == table.need("/table/{name}/{key}/")
    assert table.need(None) == rules.ANY_KEY
    table.declare("/v1/webhooks/hubspot", rules.SIGNATURE)
    assert table.need("/v1/webhooks/hubspot/") == rules.SIGNATURE


def test_only_ingest_endpoints_can_be_opened_to_the_public() -> None:
    table = rules.Endpoints()
    table.open_to_public(["/v1/leads", " "])
    assert table.need("/v1/leads") == rules.PUBLIC and table.need("/v1/activities") == rules.INGEST
    for path in ("/v1/sla", "/v1/stats", "/v1/admin/erasures", "/v1/nothing"):
        with pytest.raises(LeadflowError, match="cannot be opened") as err:
            table.open_to_public([path])
        assert err.value.field == "public_endpoints"


def test_a_worker_with_a_bad_access_setting_does_not_start(tmp_path) -> None:
    good = Settings.load(env={}, data_dir=str(tmp_path))
    build_app(good.replace(public_endpoints=("/v1/leads",)))
    with pytest.raises(LeadflowError, match="/v1/sla cannot be opened"):
        build_app(good.replace(public_endpoints=("/v1/sla",)))
    with pytest.raises(LeadflowError, match="not ID:SCOPE"):
        build_app(good.replace(api_keys=(keys.new_key(),)))
