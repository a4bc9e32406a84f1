"""Generation of the good part of the funnel: people, companies, behaviour, sales follow-up.

Everything is drawn from one ``random.Random`` so a seed reproduces a scenario byte for byte.
Times are integer epoch milliseconds until the very end (cheap arithmetic, no tz mistakes).
"""

from __future__ import annotations

import base64
import itertools
import json
import math
import random
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from streams.simulate import catalog as C
from streams.simulate.delays import Delays
from streams.simulate.model import OK, Campaign, Delivery, LeadTruth, Rep

T = TypeVar("T")
SECOND = 1000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR
# Mean delay of post-capture engagement (some of it falls after `now` and is never delivered).
ENGAGEMENT_MEAN_MS = 2 * DAY
INTERCEPT = -3.3
# How far apart fit and behaviour put leads. The MQL threshold hands sales only the better
# leads, and among those the catalog's effects alone left little to rank (oracle ROC AUC of
# SQL 0.69, under what lead scoring reaches in practice); 1.5 gives ~0.77.
EFFECT_SCALE = 1.5


# Compact UTF-8, as form posts and CRM webhooks are. orjson (a leadflow dependency) is ~10x
# faster; the stdlib encoder configured like this writes the very same bytes for these bodies
# (str/int/None/list/dict only), which a test checks, so a seed gives one scenario everywhere.
_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _stdlib_dumps(obj: Any) -> bytes:
    return _encoder.encode(obj).encode()


def _fastest_dumps() -> Callable[[Any], bytes]:
    try:
        import orjson
    except ImportError:  # pragma: no cover - depends on the environment
        return _stdlib_dumps
    return orjson.dumps


dumps = _fastest_dumps()


def loads(body: bytes) -> Any:
    return json.loads(body)


CHANNELS = {"lead": "lead", "activity": "activity", "status": "crm", "touch": "crm"}


def event(ms: int, kind: str, lead_id: str, body: bytes) -> Delivery:
    """A good event, ready to deliver. ``kind``: lead | activity | status | touch.

    Bodies are serialised at once (keeping ~10 dicts per lead alive doubled generation time
    at 20k leads), and until ``generate`` finishes ``due_s`` holds the delivery time in epoch
    ms: the event time here, which the source's delay (``delays``) and bad input (resends,
    reordering) move before it becomes wall seconds.
    """
    channel: Any = CHANNELS[kind]
    return Delivery(float(ms), channel, body, "", lead_id, OK, None, ms)


def kind_of(d: Delivery) -> str:
    if d.channel != "crm":
        return d.channel
    return "touch" if d.body.startswith(b'{"event":"lead.touch.logged"') else "status"


@dataclass(slots=True)
class Company:
    name: str
    domain: str
    size: str
    industry: str
    region: str
    tech: list[str]
    linkedin: str


@dataclass(slots=True)
class Person:
    first: str
    last: str
    local: str  # ascii email local part, lower case
    title: str
    seniority: float


@dataclass(slots=True)
class Funnel:
    """Working state of one generation run."""

    rng: random.Random
    start_ms: int
    now_ms: int
    campaigns: list[Campaign]
    reps: list[Rep]
    policies: Any  # core.handoff.Policies: the rules leadflow applies
    delays: Delays  # how late each source delivers (its own random stream)
    events: list[Delivery] = field(default_factory=list)
    truth: dict[str, LeadTruth] = field(default_factory=dict)
    emails: set[str] = field(default_factory=set)
    domains: set[str] = field(default_factory=set)
    attributes: bool = False  # leads carry custom attributes (``simulate.attributes``)


def uuid4(rng: random.Random) -> str:
    """Same string as ``str(uuid.UUID(int=rng.getrandbits(128), version=4))``, ~4x faster."""
    n = (rng.getrandbits(128) & ~(0xF000 << 64) & ~(0xC000 << 48)) | (0x4000 << 64) | (
        0x8000 << 48
    )
    h = f"{n:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


_ID_ALPHABET = bytes.maketrans(b"+/", b"xZ")


def webhook_id(rng: random.Random) -> str:
    """A Standard Webhooks style message id, e.g. ``msg_2KWPBgLlAfxdpx2AI54pPJ85f4W``."""
    return "msg_" + base64.b64encode(rng.randbytes(21)).translate(_ID_ALPHABET).decode()[:27]


def webhook_ids(rng: random.Random, n: int) -> list[str]:
    """``n`` message ids at once (one draw, one encode: ids for every event are hot)."""
    text = base64.b64encode(rng.randbytes(21 * n)).translate(_ID_ALPHABET).decode()
    return ["msg_" + text[i : i + 27] for i in range(0, 28 * n, 28)]


_MINUTE_PREFIX: dict[int, str] = {}


def iso(ms: int, millis: bool = False) -> str:
    """RFC 3339 UTC with a ``Z``, as most marketing systems write it.

    Called for every event, so the ``YYYY-MM-DDTHH:MM:`` part is cached per minute.
    """
    minute, rest = divmod(ms, MINUTE)
    prefix = _MINUTE_PREFIX.get(minute)
    if prefix is None:
        if len(_MINUTE_PREFIX) > 200_000:  # ~5 months of minutes; keeps a long-lived process flat
            _MINUTE_PREFIX.clear()
        stamp = datetime.fromtimestamp(minute * 60, UTC).strftime("%Y-%m-%dT%H:%M:")
        prefix = _MINUTE_PREFIX[minute] = stamp
    if millis:
        return f"{prefix}{rest // SECOND:02d}.{rest % SECOND:03d}Z"
    return f"{prefix}{rest // SECOND:02d}Z"


def pick(rng: random.Random, seq: Sequence[T]) -> T:
    """``rng.choice`` without its bookkeeping; this runs a million times per scenario."""
    return seq[int(rng.random() * len(seq))]


def between(rng: random.Random, a: int, b: int) -> int:
    """``rng.randint(a, b)``, cheaper (see ``pick``)."""
    return a + int(rng.random() * (b - a + 1))


def poisson(rng: random.Random, lam: float) -> int:
    limit, k, p = math.exp(-lam), 0, rng.random()
    while p > limit:
        k += 1
        p *= rng.random()
    return k


def _ascii(s: str) -> str:
    folded = unicodedata.normalize("NFKD", s).encode("ascii", "ignore").decode()
    return "".join(ch for ch in folded.lower() if ch.isalnum())


def make_campaigns(rng: random.Random, now: datetime) -> list[Campaign]:
    quarter = (now.month - 1) // 3 + 1
    out = []
    for slug, source, medium, quality, weight, trigger in C.CAMPAIGNS:
        out.append(
            Campaign(
                campaign_id=f"cmp-{now.year}-q{quarter}-{slug}",
                utm_source=source,
                utm_medium=medium,
                utm_campaign=f"q{quarter}-{slug}",
                quality=round(quality + rng.uniform(-0.1, 0.1), 3),
                weight=weight,
                trigger=trigger,
            )
        )
    return out


def make_companies(f: Funnel, n: int) -> list[Company]:
    rng = f.rng
    out = []
    for _ in range(n):
        for attempt in range(50):
            head, core = pick(rng, C.COMPANY_HEADS), pick(rng, C.COMPANY_CORES)
            slug = f"{head}-{core}".lower() if rng.random() < 0.5 else f"{head}{core}".lower()
            if attempt > 5:
                slug += str(between(rng, 2, 999))
            domain = slug + pick(rng, C.TLDS)
            if domain not in f.domains:
                break
        f.domains.add(domain)
        region = rng.choices(C.REGIONS, C.REGION_WEIGHTS)[0]
        out.append(
            Company(
                name=f"{head} {core}{pick(rng, C.COMPANY_SUFFIXES)}",
                domain=domain,
                size=rng.choices(C.SIZE_BANDS, C.SIZE_WEIGHTS)[0],
                industry=rng.choices(C.INDUSTRIES, C.INDUSTRY_WEIGHTS)[0],
                region=region,
                tech=rng.sample(C.TECH, between(rng, 1, 5)),
                linkedin=f"https://www.linkedin.com/company/{slug}",
            )
        )
    return out


_TITLE_NAMES = [t for t, _ in C.TITLES]
_TITLE_EFFECT = dict(C.TITLES)
_TITLE_CUM = list(itertools.accumulate(C.TITLE_WEIGHTS))
_FOLD = {n: _ascii(n) for n in C.FIRST_NAMES + C.LAST_NAMES}


def make_person(f: Funnel, company: Company) -> tuple[Person, str]:
    """A person at ``company`` and their email as typed into the form (unique per funnel)."""
    rng = f.rng
    first, last = pick(rng, C.FIRST_NAMES), pick(rng, C.LAST_NAMES)
    fa, la = _FOLD[first], _FOLD[last]
    style = rng.random()
    if style < 0.55:
        local = f"{fa}.{la}"
    elif style < 0.75:
        local = f"{fa[0]}{la}"
    elif style < 0.9:
        local = fa
    else:
        local = f"{fa}_{la}"
    base, n = local, 1
    while f"{local}@{company.domain}" in f.emails:
        n += 1
        local = f"{base}{n}"
    key = f"{local}@{company.domain}"
    f.emails.add(key)
    title = rng.choices(_TITLE_NAMES, cum_weights=_TITLE_CUM)[0]
    person = Person(first, last, local, title, _TITLE_EFFECT[title])
    return person, typed_email(rng, person, company.domain)


def _cap(s: str) -> str:
    return "-".join(p[:1].upper() + p[1:] for p in s.split("-"))


def typed_email(rng: random.Random, person: Person, domain: str, *, differ: str = "") -> str:
    """The email as people type it into forms: mostly lower case, sometimes capitalised."""
    key = f"{person.local}@{domain}"
    for _ in range(8):
        r = rng.random()
        if r < 0.65:
            typed = key
        elif r < 0.8:
            typed = ".".join(_cap(p) for p in person.local.split(".")) + "@" + domain
        elif r < 0.95:
            local = ".".join(_cap(p) for p in person.local.split("."))
            typed = local + "@" + ".".join(_cap(p) for p in domain.split("."))
        else:
            typed = key.upper()
        if typed != differ:
            return typed
    return key.upper() if differ != key.upper() else key.swapcase()


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def fit_logit(company: Company, person: Person, campaign: Campaign) -> float:
    """The hidden truth, part one: conversion log-odds from firmographics and campaign."""
    # Each fitting technology in the stack adds: a stack the product plugs into twice over
    # is a better fit than one it plugs into once.
    fit = 0.2 * sum(t in C.TECH_FIT for t in company.tech)
    return INTERCEPT + EFFECT_SCALE * (
        C.SIZE_EFFECT[company.size]
        + C.INDUSTRY_EFFECT[company.industry]
        + C.REGION_EFFECT[company.region]
        + person.seniority
        + campaign.quality
        + fit
    )


def behaviour_logit(counts: Mapping[str, int]) -> float:
    """The hidden truth, part two: what the person did (counts of each activity type)."""
    get = counts.get
    return EFFECT_SCALE * (
        1.5 * (get("demo_request", 0) > 0)
        + 0.6 * (get("meeting_booked", 0) > 0)
        + 0.45 * math.log1p(get("pricing_page_view", 0))
        + 0.3 * math.log1p(get("email_click", 0))
        + 0.4 * (get("webinar_attend", 0) > 0)
        + 0.15 * math.log1p(get("content_download", 0))
        + 0.1 * math.log1p(get("page_view", 0))
        - 0.3 * (get("contact_support", 0) > 0)
    )


# (activity type, base count over the horizon, sensitivity to the latent intent)
ACTIVITY_RATES = (
    ("email_open", 2.2, 0.3),
    ("email_click", 0.7, 0.5),
    ("page_view", 1.8, 0.4),
    ("pricing_page_view", 0.3, 0.9),
    ("content_download", 0.35, 0.4),
    ("webinar_attend", 0.12, 0.6),
    ("form_submit", 0.15, 0.3),
    ("contact_support", 0.05, 0.0),
)
_PAGES = ("/", "/product", "/pricing", "/customers", "/blog/streaming-101", "/docs", "/security")
_ASSETS = ("whitepaper-a", "ebook-ai", "case-study-fintech", "roi-calculator", "datasheet")


def activity_properties(rng: random.Random, kind: str) -> str:
    """The ``properties`` object of an activity, as JSON text (see ``journey.activity_body``)."""
    if kind in ("email_open", "email_click"):
        return f'{{"emailId":"nurture-{between(rng, 1, 6)}"}}'
    if kind == "page_view":
        return f'{{"page":"{pick(rng, _PAGES)}"}}'
    if kind == "pricing_page_view":
        page = pick(rng, ("/pricing", "/pricing/enterprise", "/pricing/compare"))
        return f'{{"page":"{page}"}}'
    if kind == "content_download":
        return f'{{"asset":"{pick(rng, _ASSETS)}"}}'
    if kind == "webinar_attend":
        return f'{{"webinarId":"wb-{between(rng, 1, 4)}","minutes":"{between(rng, 5, 60)}"}}'
    if kind == "demo_request":
        return '{"page":"/demo","formId":"demo-v3"}'
    if kind == "meeting_booked":
        return f'{{"tool":"calendly","lengthMin":"{pick(rng, ("30", "45"))}"}}'
    if kind == "form_submit":
        return f'{{"formId":"{pick(rng, ("contact-v2", "newsletter", "trial-signup"))}"}}'
    return f'{{"channel":"{pick(rng, ("chat", "email"))}"}}'


def js(value: str | None) -> str:
    """A JSON string literal for text known to need no escaping (ids, enum words, catalog)."""
    return "null" if value is None else f'"{value}"'
