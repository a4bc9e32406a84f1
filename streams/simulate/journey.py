"""One lead's journey: the form fill, the behaviour around it, the hidden truth, the repeats.

Marketing comes first: every lead's capture and activities are generated before anything
else. What sales does follows from what leadflow decides about those events (which leads
become MQLs, when, and whose they are: see ``handover``), so the CRM events are written
afterwards, lead by lead in MQL-time order.
"""

from __future__ import annotations

import itertools
import math
import random
from datetime import UTC, datetime
from typing import Any

from streams.simulate import catalog as C
from streams.simulate.attributes import draw as custom_attributes
from streams.simulate.funnel import (
    ACTIVITY_RATES,
    DAY,
    EFFECT_SCALE,
    ENGAGEMENT_MEAN_MS,
    HOUR,
    MINUTE,
    SECOND,
    Company,
    Funnel,
    Person,
    activity_properties,
    between,
    dumps,
    event,
    fit_logit,
    iso,
    js,
    make_companies,
    make_person,
    pick,
    poisson,
    sigmoid,
    typed_email,
    uuid4,
)
from streams.simulate.handover import Handled, Propensity, Prospect, hand_over, lead_record
from streams.simulate.model import Campaign, LeadTruth

# Share of forms that reach leadflow without what the MQL contract requires (a size band, a
# trigger action or a lawful basis): marketing's side of the SLA has breaches too.
INCOMPLETE_SHARE = 0.05
DUPLICATE_DQ = ("duplicate", "Same person as an existing lead; merged into it.")


def _dt(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def capture_time(rng: random.Random, start_ms: int, now_ms: int, region: str) -> int:
    """Form fills cluster on weekdays and local office hours, as real inbound traffic does."""
    span = now_ms - start_ms
    offset = C.UTC_OFFSET_H[region] * HOUR
    for _ in range(20):
        ms = start_ms + int(rng.random() * span)
        local = ms + offset
        hour = (local % DAY) // HOUR
        weekday = (local // DAY + 3) % 7
        weight = (0.3 if weekday >= 5 else 1.0) * (1.0 if 8 <= hour < 20 else 0.25)
        if rng.random() < weight:
            break
    return ms - ms % SECOND


def build(f: Funnel, leads: int, repeat_share: float) -> list[Handled]:
    """Generate ``leads`` distinct people plus about ``repeat_share`` of them submitting again,
    then what sales does with the ones leadflow hands over; return what their SLA verdicts
    are judged from once every delivery time is settled (``handover.judge``)."""
    rng = f.rng
    # Several people per company, as buying committees are.
    companies = make_companies(f, max(10, leads // 3))
    campaign_weights = list(itertools.accumulate(c.weight for c in f.campaigns))
    observed = _dt(f.now_ms)
    originals: list[tuple[Prospect, Person, Company, str]] = []
    for _ in range(leads):
        company = pick(rng, companies)
        campaign = rng.choices(f.campaigns, cum_weights=campaign_weights)[0]
        t0 = capture_time(rng, f.start_ms, f.now_ms - 5 * MINUTE, company.region)
        originals.append(_lead(f, company, campaign, t0, observed))
    prospects = [o[0] for o in originals]
    for prospect, person, company, email in originals:
        if rng.random() >= repeat_share:
            continue
        truth = prospect.truth
        t0 = int(truth.captured_at.timestamp() * 1000)
        t_again = t0 + int(rng.lognormvariate(math.log(30 * HOUR), 1.0))
        if t_again <= f.now_ms - MINUTE:
            t_again -= t_again % SECOND
            prospects.append(
                _repeat(f, truth, person, company, email, t_again, campaign_weights, observed)
            )
    # Marketing's events are all written: the API queue delivers them now, so routing knows
    # when leadflow reads each MQL (sales' own delays are drawn as its events are written).
    f.delays.api(f.events)
    return hand_over(f, prospects)


def _lead(
    f: Funnel, company: Company, campaign: Campaign, t0: int, observed: datetime
) -> tuple[Prospect, Person, Company, str]:
    rng = f.rng
    lead_id = uuid4(rng)
    person, email = make_person(f, company)
    intent = rng.gauss(0.0, 1.0) + 0.5 * campaign.quality
    acts: list[tuple[int, str]] = []
    triggers = [campaign.trigger]
    if rng.random() < sigmoid(-2.3 + 1.1 * intent):
        if rng.random() < 0.6:
            # The form itself was the demo form: the capture *is* the hand-raise.
            t_demo = t0 + between(rng, 5, 90) * SECOND
            triggers.append("requested_demo")
        else:
            t_demo = t0 + int(rng.lognormvariate(math.log(1.5 * DAY), 0.8))
        acts.append((t_demo, "demo_request"))
        if rng.random() < 0.55:
            acts.append((t_demo + between(rng, 2, 240) * MINUTE, "meeting_booked"))
    webinar = "webinar" in campaign.campaign_id
    for kind, base, sensitivity in ACTIVITY_RATES:
        boost = 4.0 if webinar and kind == "webinar_attend" else 1.0
        k = poisson(rng, boost * base * math.exp(sensitivity * intent))
        if k:
            for _ in range(k):
                acts.append((t0 + 5 * SECOND + int(rng.expovariate(1 / ENGAGEMENT_MEAN_MS)), kind))
    if intent > 0.8 and rng.random() < 0.6:
        triggers.append("viewed_pricing_page")
    triggers.extend(rng.sample(C.EXTRA_TRIGGERS[:1] + C.EXTRA_TRIGGERS[2:], between(rng, 0, 2)))

    acts.sort(key=_first)
    draw = rng.random()  # decides conversion once the probability at handover is known
    body = _lead_body(f, lead_id, person, email, company, campaign, triggers, t0, intent)
    shift = 0.0
    if f.attributes:
        body["attributes"], effect = custom_attributes(lead_id)
        shift = EFFECT_SCALE * effect
    sent = [event(t0, "lead", lead_id, dumps(body))]
    delivered = []
    for ms, kind in acts:
        if ms <= f.now_ms:
            raw = activity_body(rng, lead_id, kind, campaign, ms)
            sent.append(event(ms, "activity", lead_id, raw))
            delivered.append((ms, kind))
    f.events.extend(sent)
    delivered.sort(key=_first)  # stable, as the deliveries are sorted
    bad_fit_reason = (
        "student_or_job_seeker" if person.title in ("Student", "Intern")
        else "too_small" if company.size == "1-10" else None
    )
    truth = f.truth[lead_id] = LeadTruth(
        lead_id=lead_id,
        email_key=email.lower(),
        campaign_id=campaign.campaign_id,
        captured_at=_dt(t0),
        probability=0.0,  # set by ``handover.settle``
        converted=False,
        outcome="",
        hand_raiser=any(kind == "demo_request" for _, kind in delivered),
    )
    prospect = Prospect(
        truth, lead_record(body, observed), delivered, [], bad_fit_reason,
        propensity=Propensity(
            fit_logit(company, person, campaign) + shift, acts, "requested_demo" in triggers,
            draw
        ),
        sent=sent,
    )
    return prospect, person, company, email


def _first(item: tuple[int, str]) -> int:
    return item[0]


def _repeat(
    f: Funnel,
    original: LeadTruth,
    person: Person,
    company: Company,
    original_email: str,
    t0: int,
    campaign_weights: list[float],
    observed: datetime,
) -> Prospect:
    """The same person fills a form again: new lead id, same email in another spelling. If
    leadflow hands it over, the rep finds the duplicate and disqualifies it."""
    rng = f.rng
    lead_id = uuid4(rng)
    campaign = rng.choices(f.campaigns, cum_weights=campaign_weights)[0]
    email = typed_email(rng, person, company.domain, differ=original_email)
    body = _lead_body(f, lead_id, person, email, company, campaign, [campaign.trigger], t0, 0.0)
    sent = [event(t0, "lead", lead_id, dumps(body))]
    delivered = []
    for _ in range(between(rng, 0, 2)):
        ms = t0 + 5 * SECOND + int(rng.expovariate(1 / (6 * HOUR)))
        if ms <= f.now_ms:
            raw = activity_body(rng, lead_id, "page_view", campaign, ms)
            sent.append(event(ms, "activity", lead_id, raw))
            delivered.append((ms, "page_view"))
    f.events.extend(sent)
    delivered.sort(key=_first)
    truth = f.truth[lead_id] = LeadTruth(
        lead_id=lead_id,
        email_key=original.email_key,
        campaign_id=campaign.campaign_id,
        captured_at=_dt(t0),
        probability=0.0,  # the original's, once ``handover.settle`` knows it
        converted=False,
        outcome="",
        hand_raiser=False,
        alias_of=original.lead_id,
    )
    return Prospect(truth, lead_record(body, observed), delivered, ["DISQUALIFIED"], None,
                    DUPLICATE_DQ, sent=sent)


def _lead_body(
    f: Funnel,
    lead_id: str,
    person: Person,
    email: str,
    company: Company,
    campaign: Campaign,
    triggers: list[str],
    t0: int,
    intent: float,
) -> dict[str, Any]:
    rng = f.rng
    r = rng.random()
    basis = "consent" if r < 0.7 else "legitimate_interest" if r < 0.95 else "contract"
    consented = t0 - between(rng, 0, 30 * 24 * 60) * MINUTE - between(rng, 1, 59) * SECOND
    channels = ["email"] + (["phone"] if rng.random() < 0.6 else []) + (
        ["sms"] if rng.random() < 0.1 else []
    )
    # Marketing's own points score: pre-capture signals only, noisy, sometimes absent.
    score = None
    if rng.random() < 0.75:
        raw = 35 + 12 * intent + 25 * ("requested_demo" in triggers) + 20 * person.seniority
        score = max(0, min(100, int(raw + rng.gauss(0, 12))))
    phone_prefix = C.PHONE_PREFIX[company.region]
    size: str | None = company.size
    consent: dict[str, Any] | None = {
        "lawfulBasis": basis, "consentTimestamp": iso(consented), "channels": channels}
    if rng.random() < INCOMPLETE_SHARE:
        # The form left out what the MQL contract asks for: leadflow accepts the lead, judges
        # marketing for it and hands it over all the same, except without a lawful basis.
        r = rng.random()
        if r < 0.45:
            size = None
        elif r < 0.8:
            triggers = []
        else:
            consent = None
    return {
        "leadId": lead_id,
        "email": email,
        "firstName": person.first,
        "lastName": person.last,
        "phone": None if rng.random() < 0.2 else f"{phone_prefix}{between(rng, 0, 9999):04d}",
        "jobTitle": None if rng.random() < 0.05 else person.title,
        "companyName": company.name,
        "companySize": size,
        "region": company.region,
        "leadScore": score,
        "triggerActions": triggers,
        "enrichedData": {
            "linkedinUrl": company.linkedin if rng.random() < 0.85 else None,
            "industry": company.industry,
            "techStack": company.tech,
        },
        "attribution": {
            "campaignId": campaign.campaign_id,
            "utmSource": campaign.utm_source,
            "utmMedium": campaign.utm_medium,
            "utmCampaign": campaign.utm_campaign,
            "originalSource": pick(rng, (campaign.utm_medium, "organic_search", "direct")),
            "latestSource": campaign.utm_medium,
        },
        "consent": consent,
        "timestamp": iso(t0),
    }


def activity_body(
    rng: random.Random, lead_id: str, kind: str, campaign: Campaign, ms: int
) -> bytes:
    # Written directly rather than via a dict and json: half of all events are activities,
    # every value is an id, an enum word or catalog text (nothing to escape), and a test
    # checks that each body is byte-identical to its canonical re-encoding.
    cid = None if kind == "page_view" and rng.random() < 0.5 else campaign.campaign_id
    return (
        f'{{"eventId":"{uuid4(rng)}","leadId":"{lead_id}","type":"{kind}",'
        f'"campaignId":{js(cid)},"properties":{activity_properties(rng, kind)},'
        f'"timestamp":"{iso(ms, True)}"}}'
    ).encode()
