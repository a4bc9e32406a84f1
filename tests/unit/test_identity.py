"""Identity resolution: first capture wins, whatever order the claims arrive in."""

from __future__ import annotations

import copy
import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core import identity
from streams.core.identity import Alias, claim

A, B, C, D = (f"{n}0000000-0000-4000-8000-000000000000" for n in "abcd")


def claims(*pairs: tuple[str, int]) -> tuple[dict[str, Any] | None, list[list[Alias]]]:
    entry: dict[str, Any] | None = None
    emitted = []
    for lead_id, at in pairs:
        entry, links = claim(entry, lead_id, at)
        emitted.append(links)
    return entry, emitted


def test_first_claim_is_canonical_without_links() -> None:
    entry, links = claim(None, B, 100)
    assert entry == {"canonical": B, "canonical_at": 100, "aliases": {}}
    assert links == []


def test_later_claim_becomes_an_alias() -> None:
    entry, emitted = claims((B, 100), (C, 200))
    assert entry == {"canonical": B, "canonical_at": 100, "aliases": {C: 200}}
    assert emitted[-1] == [Alias(C, B)]


def test_earlier_claim_takes_over_and_repoints_every_alias() -> None:
    entry, emitted = claims((C, 200), (D, 300), (B, 100))
    assert entry == {"canonical": B, "canonical_at": 100, "aliases": {C: 200, D: 300}}
    assert emitted == [[], [Alias(D, C)], [Alias(C, B), Alias(D, B)]]


def test_same_time_ties_break_on_lead_id() -> None:
    entry, emitted = claims((B, 100), (A, 100))
    assert entry is not None and entry["canonical"] == A
    assert emitted[-1] == [Alias(B, A)]


def test_reclaiming_changes_nothing() -> None:
    entry, _ = claims((B, 100), (C, 200))
    assert entry is not None
    for lead_id, at in ((B, 100), (B, 150), (C, 200), (C, 900)):
        again, links = claim(entry, lead_id, at)
        assert again is entry
        assert links == []


def test_earlier_reclaim_lowers_the_time_without_new_links() -> None:
    entry, _ = claims((B, 100), (C, 200))
    entry, links = claim(entry, C, 150)
    assert (entry["aliases"], links) == ({C: 150}, [])
    entry, links = claim(entry, B, 50)
    assert (entry["canonical_at"], links) == (50, [])
    # A reclaim that moves an alias before the canonical makes it the canonical.
    entry, links = claim(entry, C, 10)
    assert entry == {"canonical": C, "canonical_at": 10, "aliases": {B: 50}}
    assert links == [Alias(B, C), Alias(C, C)]  # C's earlier pointer to B is void


def test_claim_does_not_mutate_its_input() -> None:
    entry, _ = claims((C, 200), (D, 300))
    before = copy.deepcopy(entry)
    claim(entry, B, 100)
    claim(entry, A, 400)
    assert entry == before


def test_entries_are_json_values() -> None:
    entry, _ = claims((C, 200), (B, 100), (D, 300))
    assert json.loads(json.dumps(entry)) == entry


def test_link_event_ids_are_deterministic_per_link_and_canonical_key() -> None:
    link = identity.link_event_id
    assert link(Alias(B, A), 100) == link(Alias(B, A), 100)
    assert link(Alias(B, A), 100) != link(Alias(A, B), 100)
    # The same pair can recur after an earlier re-claim; it is then a different event.
    assert link(Alias(B, A), 100) != link(Alias(B, A), 50)


@settings(max_examples=200)
@given(pairs=st.lists(st.tuples(st.sampled_from([A, B, C]), st.integers(0, 5)), max_size=12))
def test_link_event_ids_never_repeat_within_a_history(pairs: list[tuple[str, int]]) -> None:
    entry: dict[str, Any] | None = None
    ids = []
    for lead_id, at in pairs:
        entry, links = claim(entry, lead_id, at)
        ids += [identity.link_event_id(link, entry["canonical_at"]) for link in links]
    assert len(ids) == len(set(ids))


@settings(max_examples=300)
@given(
    times=st.lists(st.integers(0, 5), min_size=2, max_size=5),
    data=st.data(),
)
def test_a_link_is_dated_when_both_leads_were_captured_whatever_the_claim_order(
    times: list[int], data: st.DataObject
) -> None:
    # One capture per lead id, as live intake makes them; the claims are read in any order.
    pairs = list(zip([A, B, C, D], times, strict=False))
    dated: dict[str, int] = {}
    for order in (pairs, data.draw(st.permutations(pairs))):
        entry: dict[str, Any] | None = None
        for lead_id, at in order:
            entry, links = claim(entry, lead_id, at)
            for link in links:
                when = identity.linked_at(entry, link)
                captured = dict(pairs)
                assert when == max(captured[link.alias_lead_id], captured[link.canonical_lead_id])
                event_id = identity.link_event_id(link, entry["canonical_at"])
                assert dated.setdefault(event_id, when) == when


def test_normalise_email_is_the_identity_key() -> None:
    assert identity.normalise_email(" Dana.W@Northwind.IO ") == "dana.w@northwind.io"


# --- properties ----------------------------------------------------------------------------

lead_ids = st.sampled_from([A, B, C, D, "e0000000-0000-4000-8000-000000000000"])
claim_lists = st.lists(st.tuples(lead_ids, st.integers(0, 5)), min_size=1, max_size=12)


@settings(max_examples=300)
@given(pairs=claim_lists, data=st.data())
def test_final_entry_is_independent_of_arrival_order(
    pairs: list[tuple[str, int]], data: st.DataObject
) -> None:
    shuffled = data.draw(st.permutations(pairs))
    first, _ = claims(*pairs)
    second, _ = claims(*shuffled)
    assert first == second
    assert json.dumps(first) == json.dumps(second)  # same key order too


@settings(max_examples=300)
@given(pairs=claim_lists)
def test_everyone_ends_up_aliased_to_the_earliest_capture(pairs: list[tuple[str, int]]) -> None:
    entry, emitted = claims(*pairs)
    assert entry is not None
    earliest = {}
    for lead_id, at in pairs:
        earliest[lead_id] = min(at, earliest.get(lead_id, at))
    canonical = min(earliest, key=lambda lid: (earliest[lid], lid))
    assert entry["canonical"] == canonical
    assert entry["canonical_at"] == earliest[canonical]
    assert entry["aliases"] == {lid: at for lid, at in earliest.items() if lid != canonical}
    # A consumer applying the emitted links in order ends with every alias on the canonical.
    pointer: dict[str, str] = {}
    for links in emitted:
        for link in links:
            if link.alias_lead_id == link.canonical_lead_id:
                pointer.pop(link.alias_lead_id, None)
            else:
                pointer[link.alias_lead_id] = link.canonical_lead_id
    assert pointer == dict.fromkeys(entry["aliases"], canonical)
