"""Identity resolution: several lead ids captured for one person (one normalised email).

The identity table holds one entry per email key::

    {"canonical": lead_id, "canonical_at": ms, "aliases": {lead_id: occurred_ms, ...}}

The canonical lead is the one with the smallest ``(occurred_at_ms, lead_id)``: the first
capture wins, ties broken by id. Each lead id keeps the earliest time it was claimed at. That
makes the final entry a function of the *set* of claims only, so live processing, a replay
and an out-of-order delivery all end in the same entry. Because the canonical key can only
decrease, a link is emitted at most once per canonical key ``(canonical_at, canonical)``,
which is why ``link_event_id`` is derived from the link and that key.

A lead id that was an alias and becomes canonical again (it is re-claimed with an earlier
time, e.g. captures replayed out of order) gets a self-link ``Alias(x, x)``: "x is its own
canonical now", so consumers clear the pointer they were given earlier.

Vendor objects (``core.external``) belong to a person too: ``resolve`` with an external key
records the object in the entry (``"external": [key, ...]``) and answers with the person's
canonical lead, and again for every object of the person whenever the canonical lead changes.
The object's own capture counts only when it would be the canonical one (the earliest
capture, or the first of the person): otherwise it goes to the canonical lead and no second
lead exists at all.

``claim`` never mutates its input: entries are tiny (a handful of ids per person), and a
pure transition keeps the agent's table update trivially correct.
"""

from __future__ import annotations

import uuid
from typing import Any, NamedTuple

from streams.core.contract import EVENT_NAMESPACE, normalise_email

__all__ = ["Alias", "claim", "link_event_id", "linked_at", "normalise_email", "resolve"]

Entry = dict[str, Any]


class Alias(NamedTuple):
    """A link to publish: ``alias_lead_id`` now resolves to ``canonical_lead_id`` (both equal:
    the lead is canonical again and any earlier pointer of it is void)."""

    alias_lead_id: str
    canonical_lead_id: str


def claim(entry: Entry | None, lead_id: str, occurred_at_ms: int) -> tuple[Entry, list[Alias]]:
    """Record that ``lead_id`` was captured with this email at ``occurred_at_ms``.

    Returns the new entry (the input is left untouched; an unchanged claim returns the same
    object) and the alias links that are new or changed by this claim, sorted by alias id.
    """
    if entry is None:
        return {"canonical": lead_id, "canonical_at": occurred_at_ms, "aliases": {}}, []
    canonical: str = entry["canonical"]
    canonical_at: int = entry["canonical_at"]
    aliases: dict[str, int] = entry["aliases"]

    if lead_id == canonical:
        if occurred_at_ms >= canonical_at:
            return entry, []
        # An earlier claim of the canonical lowers its key; it stays canonical.
        return {"canonical": canonical, "canonical_at": occurred_at_ms, "aliases": aliases}, []

    known_at = aliases.get(lead_id)
    if known_at is not None and known_at <= occurred_at_ms:
        return entry, []

    rest = dict(aliases)
    if (occurred_at_ms, lead_id) < (canonical_at, canonical):
        # A new canonical: every other id, including the old canonical, re-points to it.
        rest.pop(lead_id, None)
        rest[canonical] = canonical_at
        ordered = dict(sorted(rest.items()))
        links = [Alias(alias, lead_id) for alias in ordered]
        if known_at is not None:
            links.append(Alias(lead_id, lead_id))
        return {"canonical": lead_id, "canonical_at": occurred_at_ms, "aliases": ordered}, links

    rest[lead_id] = occurred_at_ms
    ordered = dict(sorted(rest.items()))
    new_entry = {"canonical": canonical, "canonical_at": canonical_at, "aliases": ordered}
    # An alias already pointing at the canonical only moved earlier: no link changed.
    links = [] if known_at is not None else [Alias(lead_id, canonical)]
    return new_entry, links


def link_event_id(link: Alias, canonical_at_ms: int) -> str:
    """Deterministic event id for the IdentityResolved events of one link, given the entry's
    ``canonical_at`` after the claim that emitted it.

    Use the same id on both sides of the link (the alias's trace and the canonical's trace):
    the merged timeline then shows the ALIASED step once, and a replayed claim is a duplicate.
    """
    name = f"identity:{link.alias_lead_id}->{link.canonical_lead_id}@{canonical_at_ms}"
    return str(uuid.uuid5(EVENT_NAMESPACE, name))


def linked_at(entry: Entry, link: Alias) -> int:
    """The event time of a link in ``entry`` (the entry after the claim that emitted it): when
    both of its leads had been captured, the later of their claim times.

    Not the time of the claim that happened to emit it: claims of one email can be read in
    either order, and the link must be dated the same way whichever came first."""
    canonical_at: int = entry["canonical_at"]
    return max(entry["aliases"].get(link.alias_lead_id, canonical_at), canonical_at)


def resolve(entry: Entry | None, lead_id: str, occurred_at_ms: int,
            external_key: str | None = None
            ) -> tuple[Entry, list[Alias], list[tuple[str, str]]]:
    """A claim (``external_key`` None: a lead captured with this e-mail) or a vendor object's
    question (its capture, of derived lead ``lead_id``, carries this e-mail): the new entry,
    the alias links to publish (as ``claim``) and the answers to send, ``(external key,
    canonical lead id)`` — the asking object's, and every object's when the canonical lead
    changed."""
    externals: list[str] = list((entry or {}).get("external") or ())
    before = None if entry is None else entry["canonical"]
    if external_key is None or entry is None or (
            (occurred_at_ms, lead_id) < (entry["canonical_at"], entry["canonical"])):
        new, links = claim(entry, lead_id, occurred_at_ms)
    else:
        new, links = entry, []  # the object goes to the canonical lead: no lead of its own
    if external_key is not None and external_key not in externals:
        externals = sorted([*externals, external_key])
    if externals != list(new.get("external") or ()):  # claim builds entries without them
        new = {**new, "external": externals}
    canonical = new["canonical"]
    if canonical != before:
        answers = [(key, canonical) for key in externals]
    elif external_key is not None:
        answers = [(external_key, canonical)]
    else:
        answers = []
    return new, links, answers


def answer_event_id(external_key: str, lead_id: str, canonical_at_ms: int) -> str:
    """Deterministic id of an answer, so a replayed claim repeats it rather than adding one."""
    name = f"external:{external_key}->{lead_id}@{canonical_at_ms}"
    return str(uuid.uuid5(EVENT_NAMESPACE, name))
