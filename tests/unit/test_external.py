"""External ids (core.external with core.identity.resolve): a vendor object's events land on
the person's first lead, whatever order captures, vendor events and identity's answers are
read in."""

from __future__ import annotations

import uuid
from collections import defaultdict, deque
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.core import external, identity

EMAILS = ("a", "b")


def ev(kind: str, event_id: str, at: int) -> dict[str, Any]:
    return {"kind": kind, "event_id": event_id, "occurred_at": at, "payload": ""}


def lid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


class World:
    """The agents' rules wired by queues: identity's per person, the link agent's per
    object (Kafka keeps one key's order), the intake's in any order (a trace is a set)."""

    def __init__(self) -> None:
        self.identities: dict[str, Any] = {}
        self.links: dict[str, Any] = {}
        self.kept: dict[tuple[str, int], Any] = {}
        self.traces: dict[str, set[str]] = defaultdict(set)
        self.to_identity: dict[str, deque] = defaultdict(deque)
        self.to_links: dict[str, deque] = defaultdict(deque)
        self.to_intake: deque = deque()

    def queues(self) -> list[deque]:
        return [q for q in (*self.to_identity.values(), *self.to_links.values(),
                            self.to_intake) if q]

    def step(self, queue: deque) -> None:
        item = queue.popleft()
        what = item[0]
        if what == "intake":
            _, lead, event, email = item
            self.traces[lead].add(event["event_id"])
            if event["kind"] == "lead" and email:
                self.to_identity[email].append(
                    ("claim", lead, event["occurred_at"], None, email))
        elif what in ("claim", "ask"):
            _, lead, at, key, email = item
            entry, _, answers = identity.resolve(self.identities.get(email), lead, at, key)
            self.identities[email] = entry
            for ext, canonical in answers:
                self.to_links[ext].append(("link", email, canonical))
        elif what == "event":
            _, key, derived, event, email = item
            entry, actions = external.on_event(self.links.get(key), derived, event, email)
            self.links[key] = entry
            self.act(key, actions)
        else:  # link
            _, email, lead = item
            key = next(k for k, q in self.to_links.items() if q is queue)
            entry, actions = external.on_link(self.links.get(key), None, email, lead)
            self.links[key] = entry
            self.act(key, actions)

    def act(self, key: str, actions: list[external.Action]) -> None:
        for action in actions:
            if isinstance(action, external.Forward):
                self.to_intake.append(("intake", action.lead_id, action.event,
                                       action.event.get("email")))
            elif isinstance(action, external.Keep):
                self.kept[key, action.index] = action.event
            elif isinstance(action, external.Resend):
                self.act(key, [external.Forward(action.lead_id, self.kept[key, i])
                               for i in range(action.count)])
            else:
                self.to_identity[action.identity_key].append(
                    ("ask", action.derived, action.occurred_at, key, action.identity_key))


@st.composite
def scenarios(draw: Any) -> tuple[list[tuple], list[tuple]]:
    """Direct captures (lead, email, at) and vendor objects' events (key, derived, event,
    email of a capture), in a drawn arrival order, with a drawn interleaving."""
    inputs = []
    for i in range(draw(st.integers(0, 3))):
        email = draw(st.sampled_from(EMAILS))
        at = draw(st.integers(0, 5))
        event = ev("lead", f"L{i}", at) | {"email": email}
        inputs.append(("direct", lid(f"L{i}"), event, email))
    for j in range(draw(st.integers(1, 3))):
        key = f"crm:contact:{j}"
        email = draw(st.sampled_from((*EMAILS, None)))
        if draw(st.booleans()):
            event = ev("lead", f"X{j}c", draw(st.integers(0, 5))) | {"email": email}
            inputs.append(("object", key, event, email))
        for k in range(draw(st.integers(0, 3))):
            kind = draw(st.sampled_from(("status", "touch")))
            inputs.append(("object", key, ev(kind, f"X{j}e{k}", draw(st.integers(0, 9))), None))
    order = draw(st.permutations(inputs))
    picks = draw(st.lists(st.integers(0, 10**6), min_size=200, max_size=200))
    return order, picks


def run(order: list[tuple], picks: list[int]) -> World:
    world = World()
    pending = deque(order)
    picks = deque(picks)
    while pending or world.queues():
        queues = world.queues()
        choice = picks.popleft() if picks else 0
        if pending and (not queues or choice % (len(queues) + 1) == len(queues)):
            kind, key, event, email = pending.popleft()
            if kind == "direct":
                world.to_intake.append(("intake", key, event, email))
            else:
                derived = lid(key)
                world.to_links[key].append(("event", key, derived, event, email))
        else:
            world.step(queues[choice % len(queues)])
    return world


def expected_links(order: list[tuple]) -> dict[str, str]:
    """The person's first capture (event time, then id), counting objects' own captures."""
    captures: dict[str, list[tuple[int, str]]] = defaultdict(list)
    object_email: dict[str, str | None] = {}
    first: dict[str, tuple[int, str]] = {}
    for kind, key, event, email in order:
        if event["kind"] != "lead":
            object_email.setdefault(key, None)
            continue
        if kind == "direct":
            captures[email].append((event["occurred_at"], key))
            continue
        mark = (event["occurred_at"], event["event_id"])
        if key not in first or mark < first[key]:
            first[key] = mark
            object_email[key] = email
    for key, email in object_email.items():
        if email is not None:
            captures[email].append((first[key][0], lid(key)))
    return {key: (min(captures[email])[1] if email else lid(key))
            for key, email in object_email.items()}


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_every_object_event_ends_on_the_persons_first_lead(scenario: Any) -> None:
    order, picks = scenario
    world = run(order, picks)
    # Objects whose capture never came: their held events go to their own lead on expiry.
    for key, entry in list(world.links.items()):
        entry, actions = external.expire(entry)
        world.act(key, actions)
    while world.queues():
        world.step(world.queues()[0])
    want = expected_links(order)
    for kind, key, event, _ in order:
        if kind != "object":
            continue
        assert world.links[key]["lead"] == want[key], key
        assert world.links[key]["held"] == []
        if event["kind"] != "lead":
            assert event["event_id"] in world.traces[want[key]], (key, event)
        else:
            assert any(event["event_id"] in t for t in world.traces.values())


def test_an_object_of_a_known_person_makes_no_lead_of_its_own() -> None:
    lead, derived, key = lid("L1"), lid("x"), "hubspot:contact:5101"
    entry, _, answers = identity.resolve(None, lead, 100)
    assert answers == []
    links, actions = external.on_event(None, derived, ev("status", "s1", 300))
    assert actions == [] and links["held"]  # named only by its id: held
    links, actions = external.on_event(links, derived, ev("lead", "c1", 200), "idkey")
    assert actions == [external.Ask("idkey", derived, 200, "c1")]
    entry, alias_links, answers = identity.resolve(entry, derived, 200, key)
    assert alias_links == [] and answers == [(key, lead)]
    assert entry["canonical"] == lead and derived not in entry["aliases"]
    links, actions = external.on_link(links, derived, "idkey", lead)
    assert actions == [external.Forward(lead, ev("lead", "c1", 200)),  # the capture, then
                       external.Forward(lead, ev("status", "s1", 300)),  # the status, kept
                       external.Keep(0, ev("status", "s1", 300))]
    links, actions = external.on_event(links, derived, ev("touch", "t1", 400))
    assert actions == [external.Forward(lead, ev("touch", "t1", 400)),
                       external.Keep(1, ev("touch", "t1", 400))]


def test_a_later_first_lead_moves_the_objects_events() -> None:
    lead, derived, key = lid("L1"), lid("x"), "hubspot:contact:5101"
    entry, _, answers = identity.resolve(None, derived, 200, key)
    assert answers == [(key, derived)]  # nobody else yet: the object is the person's lead
    links, _ = external.on_event(None, derived, ev("lead", "c1", 200), "k")
    links, actions = external.on_link(links, derived, "k", derived)
    links, actions = external.on_event(links, derived, ev("status", "s1", 300))
    assert actions[0] == external.Forward(derived, ev("status", "s1", 300))
    entry, alias_links, answers = identity.resolve(entry, lead, 100)  # captured earlier
    assert alias_links == [identity.Alias(derived, lead)] and answers == [(key, lead)]
    links, actions = external.on_link(links, derived, "k", lead)
    assert actions == [external.Resend(lead, 1)]
    # A repeated answer changes nothing; one about another e-mail is ignored.
    assert external.on_link(links, derived, "k", lead)[1] == []
    assert external.on_link(links, derived, "other", derived)[1] == []
    assert links["lead"] == lead


def test_an_object_without_email_is_its_own_lead_and_expiry_releases_orphans() -> None:
    derived = lid("x")
    links, _ = external.on_event(None, derived, ev("touch", "t1", 300))
    links, actions = external.on_event(links, derived, ev("lead", "c1", 200))
    assert {(a.lead_id, a.event["event_id"]) for a in actions
            if isinstance(a, external.Forward)} == {(derived, "c1"), (derived, "t1")}
    orphan, _ = external.on_event(None, derived, ev("touch", "t2", 300))
    assert external.expire(orphan)[1][0] == external.Forward(derived, ev("touch", "t2", 300))
    asking, _ = external.on_event(None, derived, ev("lead", "c2", 200), "k")
    assert external.expire(asking)[1] == []  # waiting for identity: not expired
