"""The handoff for one lead: score → MQL → routing request → lifecycle → SLA verdicts.

Pure: given a lead's state (the trace state, which also holds its features, lifecycle and
SLA bookkeeping) and one event, it updates the state and returns what must be sent. The
intake agent calls it after the event has been added to the trace; the SLA timer calls
``on_clock``. Nothing here knows about Faust.

Event time everywhere: every derived event carries the event time of what caused it and a
deterministic id (uuid5 of the lead and what it is), so a replay of the same inputs derives
the same events with the same ids, and consumers drop repeats.

SLA verdicts are not kept as live clocks that each event nudges. They are recomputed from
the facts in the state — when the lead was routed, its touches, its status changes — folded
in event-time order up to the partition's clock, which makes them independent of arrival
order. ``core.sla_lifecycle`` turns them into overdue notices, one final verdict per clause
(``sla_done``) and explicit corrections.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from streams import topics
from streams.core import features as feats
from streams.core import feedback, lifecycle, monthly, sla, sla_lifecycle, trace
from streams.core.contract import event_uuid5, to_ms
from streams.core.routing import RoutingConfig
from streams.core.scoring import Score, ScoringPolicy
from streams.topics import TopicSpec

State = dict[str, Any]
Send = tuple[TopicSpec, str, dict[str, Any]]

TERMINAL = frozenset({"DISQUALIFIED", "CLOSED_WON", "CLOSED_LOST"})
IMPORTED = "import"  # the source system of `leadflow import`'s records


class Model(Protocol):
    version: str

    def score(self, features: dict[str, Any] | None) -> Score: ...


@dataclass(frozen=True)
class Policies:
    scoring: ScoringPolicy
    model: Model
    routing: RoutingConfig
    contract: sla.Contract
    # Which dispositions are labels; None: no training examples are made.
    labels: feedback.Labels | None = None


def derived_id(lead_id: str, what: str) -> str:
    return event_uuid5(f"{lead_id}/{what}")


def _step(state: State, kind: str, what: str, at: int, now_ms: int, detail: dict[str, Any],
          correlation_id: str | None = None) -> None:
    step = trace.new_step(
        kind, derived_id(state["lead_id"], what), at, now_ms, source="leadflow",
        correlation_id=correlation_id, detail=detail,
    )
    # Derived steps are never pruned from `seen` before their source, so retention is moot.
    trace.apply(state, state["lead_id"], step, now_ms=now_ms, retention_ms=1 << 62)


def on_event(
    p: Policies, state: State, kind: str, record: dict[str, Any], *, now_ms: int,
    clock_ms: int | None = None, step: trace.Step | None = None,
    settled_ms: int | None = sla_lifecycle.SAME,
) -> list[Send]:
    """Apply a validated record of topic kind lead | activity | status | touch | routed
    (a LeadRouted) to ``state`` (already holding its trace ``step``); return what to send.

    A lead captured with source system "import" is history (``leadflow import``): it is
    scored and followed through its lifecycle — a training example — but never routed,
    notified or judged: its reps and deadlines are long gone."""
    at = to_ms(record["occurred_at"])
    corr = record.get("correlation_id")
    sends: list[Send] = []
    if kind in ("lead", "activity"):
        if kind == "lead" and record.get("source_system") == IMPORTED:
            state["historic"] = True
        item = feats.input_of(kind, record)
        before = state.get("features")
        # Read after an event dated as late or later: the scores beside the events from here
        # on change (a lead's topics are read in any order).
        late = before is not None and before["last_event_at"] is not None and (
            at <= before["last_event_at"])
        state["features"] = feats.apply(before, item)
        # Kept for good: they date the MQL (_handover) and the score after each event (_rescore).
        state.setdefault("inputs", []).append(item)
        sends += _score(p, state, at, now_ms, corr, None if late else step)
        # Read in event-time order, the score now is the score then. Read late, it may have
        # reached the threshold in between though it is under now (None: the model changed,
        # nothing refolded): _handover finds and dates the crossing.
        peak = _rescore(p, state, now_ms) if late else state["scored"]["score"]
        if peak is None or peak >= p.scoring.threshold:
            sends += _handover(p, state, now_ms, corr)
    elif kind == "status":
        change = lifecycle.new_change(record)
        state["lifecycle"], _ = lifecycle.apply(state.get("lifecycle"), change)
        sends += _after_status(state, at, corr)
    elif kind == "routed":
        state["routed"] = {
            "at": at, "owner": record.get("owner_id"), "queue": record.get("queue"),
            "tier": record.get("tier") or "STANDARD",
        }
        _step(state, trace.StepKind.ROUTED, f"routed/{record['event_id']}", at, now_ms, {
            "owner": record.get("owner_id"), "queue": record.get("queue"),
            "rule": record.get("rule"), "candidates": ",".join(record.get("candidates") or ()),
            "tier": record.get("tier"),
        }, corr)
    elif kind != "touch":
        raise ValueError(f"no handoff for record kind {kind!r}")
    if p.labels is not None and kind in ("lead", "activity", "status"):
        # After every event, not only status changes: a lead's topics are read in any order,
        # and the disposition may be read before the handover that makes it an example.
        example = feedback.example_of(state, p.labels)
        if example is not None:
            sends.append((topics.EXAMPLES, state["lead_id"], feedback.record_of(example)))
    cause = ((at, record["event_id"], None, record.get("source_system"))
             if kind in ("touch", "status") or record.get("activity_type") == trace.MEETING_HELD
             else None)
    sends += on_clock(p, state, clock_ms, now_ms=now_ms, settled_ms=settled_ms, cause=cause)
    return sends


def _score(
    p: Policies, state: State, at: int, now_ms: int, corr: str | None, cause: trace.Step | None
) -> list[Send]:
    features = state["features"]
    scored = p.model.score(features)
    last = state.get("scored")
    sends: list[Send] = []
    lead_id = state["lead_id"]
    threshold = p.scoring.threshold
    crossed = scored.score >= threshold
    missing = p.contract.missing_context(features)
    if last is None or last["score"] != scored.score or last["version"] != scored.model_version:
        state["scored"] = {"score": scored.score, "version": scored.model_version, "at": at}
        what = f"scored/{at}/{scored.model_version}/{scored.score}"
        sends.append((topics.SCORED, lead_id, {
            "event_id": derived_id(lead_id, what), "lead_id": lead_id,
            "score": scored.score, "probability": scored.probability,
            "model_version": scored.model_version, "threshold": threshold / 100,
            "is_mql": crossed and not p.contract.held_back(features),
            "context_complete": not missing,
            "top_factors": [
                {"feature": f.feature, "contribution": f.contribution} for f in scored.factors
            ],
            "occurred_at": at, "correlation_id": corr,
        }))
        if last is not None and last["version"] == scored.model_version:
            # A step per score change would double the trace (and its changelog writes);
            # the new score goes beside the event that moved it (a late event: _rescore).
            if cause is not None:
                cause["detail"]["score"] = scored.score
        else:
            _step(state, trace.StepKind.SCORED, what, at, now_ms, _scored_detail(scored), corr)
    return sends


def _handover(p: Policies, state: State, now_ms: int, corr: str | None) -> list[Send]:
    """If the lead's score reached the threshold (now, or in between for an event read late):
    judge its context when it first got there (the configured MQL contract), and hand it over
    at the first moment it was there with nothing holding it back: incomplete context does
    not (it is routed by the rules that still apply), a missing lawful basis does unless
    the configuration says otherwise (``sla.Contract.consent_required``).

    Those moments are found by refolding the lead's inputs in event-time order, not taken
    from the event that happened to arrive last: leads, activities and CRM events come on
    different topics, and a capture read after a later activity still crossed at capture.
    """
    sends: list[Send] = []
    if state.get("mql_at") is not None or state["features"]["profile_at"] is None:
        return sends  # handed over already, or no capture read yet: nobody to hand over
    first, ready = crossings(p, state.get("inputs") or [])
    if first is None:
        return sends  # it never reached the threshold in event time
    historic = state.get("historic", False)
    if state.get("crossed_at") is None:
        at, features, _ = first
        missing = p.contract.missing_context(features)
        state["crossed_at"] = at
        if not historic:  # judged once, when it first crosses: marketing owes context then
            verdict = sla.context_verdict(
                p.contract, complete=not missing, missing=missing, at_ms=at,
                campaign_id=features.get("campaign_id"),
            )
            sends += _verdicts(p, state, [verdict], now_ms, corr)
            sends.append(_fact(state, "CROSSED", at, complete=not missing, corr=corr))
            held = p.contract.held_back(features)
            if held and (ready is None or ready[0] > at):
                _step(state, trace.StepKind.HELD, "held", at, now_ms, {
                    "waiting_for": ", ".join(held),
                    "reason": "no lawful basis recorded: handed to sales once one is",
                }, corr)
    if ready is None:
        return sends  # held back (no lawful basis yet); a later capture may record one
    at, features, score = ready
    lead_id = state["lead_id"]
    state["mql_at"] = at
    state["mql_features"] = features  # as sales got it: the training example's features
    state["lifecycle"], _ = lifecycle.apply(
        state.get("lifecycle"), lifecycle.system_change(derived_id(lead_id, "mql"), at, "MQL")
    )
    tier = feats.tier(features, p.scoring)
    _step(state, trace.StepKind.MQL, "mql", at, now_ms,
          {"score": score, "threshold": p.scoring.threshold, "tier": tier}, corr)
    if not historic:
        sends.append(_routing(state, "ROUTE", at, corr, tier=tier, features=features))
    return sends


def _rescore(p: Policies, state: State, now_ms: int) -> int | None:
    """Note in the trace the score after each lead and activity event *in event time*, as if
    they had been read in that order: the SCORED step at the first event (one model all
    along), and beside each later event the score it moved to. So a replay, which reads a
    lead's topics in another order, shows the same trace. Runs only for a late event: read
    in order, ``_score`` has noted the same already. Returns the highest score in event
    time (None when the model changed in between and nothing was refolded)."""
    steps: list[trace.Step] = state["steps"]
    version = p.model.version
    scored_steps = [s for s in steps if s["kind"] == trace.StepKind.SCORED]
    mine = [s for s in scored_steps if s["detail"].get("model") == version]
    if not mine:
        return None  # the model changed in between: the next event under it notes the scores
    ordered = sorted(state["inputs"], key=lambda item: item[0])
    after: dict[int, Score] = {}  # event time -> the score after its events
    features: feats.Features | None = None
    for item in ordered:
        features = feats.apply(features, item)
        after[item[0]] = p.model.score(features)  # the last of a millisecond wins
    since = mine[0]["occurred_at"]
    if len(scored_steps) == 1:  # one model all along: it first scored at the first event
        since = ordered[0][0]
        first = after[since]
        if mine[0]["occurred_at"] != since or mine[0]["detail"]["score"] != first.score:
            steps.remove(mine[0])
            state["seen"].pop(mine[0]["event_id"], None)
            _step(state, trace.StepKind.SCORED, f"scored/{since}/{version}/{first.score}",
                  since, now_ms, _scored_detail(first), mine[0]["correlation_id"])
    previous: int | None = None
    for at, score in after.items():
        if at > since and previous is not None and score.score != previous:
            noted: int | None = score.score
        else:
            noted = None  # unchanged, or the SCORED step says it
        if at >= since:
            for s in trace.steps_at(steps, at):
                if s["kind"] in (trace.StepKind.CAPTURED, trace.StepKind.ACTIVITY):
                    if noted is None:
                        s["detail"].pop("score", None)
                    else:
                        s["detail"]["score"] = noted
        previous = score.score
    return max(score.score for score in after.values())


def _scored_detail(scored: Score) -> dict[str, Any]:
    return {
        "score": scored.score, "model": scored.model_version,
        "top": ", ".join(f"{f.feature} {f.contribution:+g}" for f in scored.factors[:3]),
    }


Moment = tuple[int, feats.Features, int]  # event time, features then, score then


def crossings(p: Policies, inputs: list[feats.Input]) -> tuple[Moment | None, Moment | None]:
    """In event-time order: the first moment the score reaches the threshold, and the first
    it does with nothing holding the lead back (each with the features then)."""
    features: feats.Features | None = None
    first: Moment | None = None
    ordered = sorted(inputs, key=lambda item: item[0])
    for i, item in enumerate(ordered):
        features = feats.apply(features, item)
        if i + 1 < len(ordered) and ordered[i + 1][0] == item[0]:
            continue  # events of the same millisecond count together
        if features["profile_at"] is None:
            continue
        score = p.model.score(features).score
        if score < p.scoring.threshold:
            continue
        moment = (item[0], feats.copy_of(features), score)
        first = first or moment
        if not p.contract.held_back(features):
            return first, moment
    return first, None


def routing_id(lead_id: str, action: str, at: int) -> str:
    """A routing request's event id: the router's last tie-break between two requests."""
    return derived_id(lead_id, f"routing/{action}/{at}")


def _routing(state: State, action: str, at: int, corr: str | None, **extra: Any) -> Send:
    f = extra.get("features") or state.get("features") or {}
    lead_id = state["lead_id"]
    return (topics.ROUTING, lead_id, {
        "event_id": routing_id(lead_id, action, at), "lead_id": lead_id,
        "action": action, "owner_id": extra.get("owner"), "region": f.get("region"),
        "segment": f.get("size_band"), "industry": f.get("industry"),
        "tech": list(f.get("tech") or ()), "tier": extra.get("tier") or "STANDARD",
        "campaign_id": f.get("campaign_id"), "occurred_at": at, "correlation_id": corr,
    })


def _fact(state: State, kind: str, at: int, *, complete: bool, corr: str | None) -> Send:
    lead_id = state["lead_id"]
    return (topics.MARKETING, lead_id, {
        "event_id": derived_id(lead_id, f"fact/{kind}"), "lead_id": lead_id, "fact": kind,
        "month": monthly.month_of(state["crossed_at"]),
        "campaign_id": (state.get("features") or {}).get("campaign_id"),
        "complete": complete, "occurred_at": at, "correlation_id": corr,
    })


def _after_status(state: State, at: int, corr: str | None) -> list[Send]:
    fold = lifecycle.fold(state["lifecycle"])
    sends: list[Send] = []
    if state.get("historic"):
        return []
    if state.get("mql_at") is not None and not state.get("dq_counted") and any(
        t.to_status == "DISQUALIFIED" for t in fold.transitions
    ):
        state["dq_counted"] = True
        sends.append(_fact(state, "DISQUALIFIED", at, complete=True, corr=corr))
    routed = state.get("routed")
    if fold.status in TERMINAL and routed and routed.get("owner") and not state.get("released"):
        state["released"] = True  # the owner's capacity is free again
        sends.append(_routing(state, "RELEASE", at, corr, owner=routed["owner"]))
    return sends


def on_clock(p: Policies, state: State, clock_ms: int | None, *, now_ms: int,
             settled_ms: int | None = sla_lifecycle.SAME,
             cause: sla_lifecycle.Fact | None = None) -> list[Send]:
    """Judge the lead's SLA clauses up to event time ``clock_ms``; send the new verdicts
    (overdue notices, final verdicts, corrections: ``core.sla_lifecycle``)."""
    routed = state.get("routed")
    if not routed:
        return []
    issues, state["sla_next"] = sla_lifecycle.judge(
        p.contract, state, clock_ms, settled_ms=settled_ms, cause=cause)
    sends = _issue(p, state, issues, now_ms)
    if (
        p.contract.reassign_on_first_touch_breach
        and state["sla_done"].get(sla.FIRST_TOUCH) == "BREACHED"
        and not state.get("reassigned")
        and not state.get("released")  # closed already: nothing to reassign
        and routed.get("owner")
    ):
        state["reassigned"] = True
        # Dated when the breach was found, so the new owner's ROUTED step follows the first.
        breached = next((s["occurred_at"] for s in state["steps"] if s["kind"] ==
                         trace.StepKind.SLA and s["detail"].get("clause") == sla.FIRST_TOUCH),
                        routed["at"])
        sends.append(_routing(state, "REASSIGN", breached, None, owner=routed["owner"],
                              tier=routed["tier"]))
    return sends


def _verdicts(
    p: Policies, state: State, verdicts: list[sla.Verdict], now_ms: int, corr: str | None
) -> list[Send]:
    """Verdicts final at once (CONTEXT_COMPLETE): each clause once."""
    done: dict[str, str] = state.setdefault("sla_done", {})
    issues = []
    for v in verdicts:
        if v.clause not in done:
            done[v.clause] = v.verdict
            state.setdefault("sla_rev", {})[v.clause] = 1
            issues.append(sla_lifecycle.Issue(v, sla_lifecycle.FINAL, 1))
    return _issue(p, state, issues, now_ms, corr)


def _verdict_what(clause: str, status: str, revision: int) -> str:
    """What a revision is, for its event id and its trace step alike; revision 1 keeps the
    name verdicts had before revisions."""
    if status == sla_lifecycle.OVERDUE:
        return f"sla/{clause}/overdue"
    return f"sla/{clause}" if revision == 1 else f"sla/{clause}/r{revision}"


def verdict_id(lead_id: str, clause: str, status: str, revision: int) -> str:
    return derived_id(lead_id, _verdict_what(clause, status, revision))


def _issue(p: Policies, state: State, issues: list[sla_lifecycle.Issue], now_ms: int,
           corr: str | None = None) -> list[Send]:
    lead_id = state["lead_id"]
    sends: list[Send] = []
    for i in issues:
        v = i.verdict
        what = _verdict_what(v.clause, i.status, i.revision)
        event_id = derived_id(lead_id, what)
        supersedes = (verdict_id(lead_id, v.clause, sla_lifecycle.FINAL, i.revision - 1)
                      if i.status == sla_lifecycle.CORRECTION else None)
        sends.append((topics.SLA, lead_id, {
            "event_id": event_id, "lead_id": lead_id, "party": v.party,
            "clause": v.clause, "verdict": v.verdict, "deadline": v.deadline,
            "met_at": v.met_at, "evaluated_at": v.evaluated_at, "owner_id": v.owner_id,
            "tier": v.tier, "campaign_id": v.campaign_id,
            "contract_version": p.contract.version, "detail": v.detail,
            "occurred_at": now_ms, "correlation_id": corr,
            "status": i.status, "revision": i.revision, "verdict_key": f"{lead_id}/{v.clause}",
            "supersedes": supersedes, "late_source": i.late_source, "late_by_ms": i.late_by_ms,
        }))
        _step(state, trace.StepKind.SLA, what, v.evaluated_at, now_ms, {
            "clause": v.clause, "verdict": v.verdict, "party": v.party,
            "deadline": v.deadline, "met_at": v.met_at, "owner": v.owner_id,
            "detail": v.detail, "status": i.status, "revision": i.revision,
            "late_source": i.late_source, "late_by_ms": i.late_by_ms,
        }, corr)
    return sends
