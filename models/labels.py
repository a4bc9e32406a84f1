"""Which sales dispositions are labels: the positive statuses, the negative ones, the rest.

A disposition is a lifecycle status the CRM reported. ``label_of`` maps it to 1 (the lead was
worth sales' time), 0 (it was not) or None (not a verdict yet: still being worked, or a
status the policy does not judge). Configured by a ``[model.labels]``-like mapping::

    [model.labels]
    positive = ["SQL", "CLOSED_WON"]
    negative = ["DISQUALIFIED", "BAD_FIT", "CLOSED_LOST"]
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from streams.core.lifecycle import STATUSES

DEFAULT_POSITIVE = frozenset({"SQL", "CLOSED_WON"})
DEFAULT_NEGATIVE = frozenset({"DISQUALIFIED", "BAD_FIT", "CLOSED_LOST"})


def _statuses(values: Any, key: str) -> frozenset[str]:
    if isinstance(values, str) or not isinstance(values, Collection) or not values:
        raise ValueError(f"{key} must be a non-empty list of lead statuses, not {values!r}")
    out = set()
    for value in values:
        status = value.strip().upper() if isinstance(value, str) else None
        if status not in STATUSES:
            raise ValueError(
                f"{key}: unknown lead status {value!r} (one of {', '.join(sorted(STATUSES))})"
            )
        out.add(status)
    return frozenset(out)


@dataclass(frozen=True)
class LabelPolicy:
    positive: frozenset[str] = DEFAULT_POSITIVE
    negative: frozenset[str] = DEFAULT_NEGATIVE

    def __post_init__(self) -> None:
        positive = _statuses(self.positive, "model.labels.positive")
        negative = _statuses(self.negative, "model.labels.negative")
        both = positive & negative
        if both:
            raise ValueError(
                f"model.labels: {', '.join(sorted(both))} cannot be both positive and negative"
            )
        object.__setattr__(self, "positive", positive)
        object.__setattr__(self, "negative", negative)

    @classmethod
    def from_config(cls, section: Mapping[str, Any] | None) -> LabelPolicy:
        """From a ``[model.labels]`` table; a missing key keeps its default."""
        if section is None:
            return cls()
        if not isinstance(section, Mapping):
            raise ValueError("[model.labels] must be a table")
        unknown = set(section) - {"positive", "negative"}
        if unknown:
            raise ValueError(f"model.labels: unknown keys {sorted(unknown)}")
        return cls(
            positive=section.get("positive", DEFAULT_POSITIVE),
            negative=section.get("negative", DEFAULT_NEGATIVE),
        )

    def label_of(self, status: str | None) -> int | None:
        """1, 0, or None when ``status`` is not a verdict under this policy (CRMs write
        statuses in any case, so it is compared upper-cased)."""
        if not status:
            return None
        key = status.strip().upper()
        if key in self.positive:
            return 1
        if key in self.negative:
            return 0
        return None


DEFAULT_POLICY = LabelPolicy()


def label_of(status: str | None, policy: LabelPolicy = DEFAULT_POLICY) -> int | None:
    """``policy.label_of(status)``, with the default policy unless one is given."""
    return policy.label_of(status)
