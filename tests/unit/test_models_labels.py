"""Dispositions → labels: defaults, configuration, case, and what is not a verdict."""

from __future__ import annotations

import pytest

from models.labels import DEFAULT_POLICY, LabelPolicy, label_of


@pytest.mark.parametrize(
    ("status", "label"),
    [
        ("SQL", 1), ("CLOSED_WON", 1), ("DISQUALIFIED", 0), ("BAD_FIT", 0),
        ("CLOSED_LOST", 0), ("MQL", None), ("WORKING", None), ("SAL", None),
        ("NO_RESPONSE", None), (None, None), ("", None), ("closed_won", 1),
        (" Disqualified ", 0), ("SOMETHING_ELSE", None),
    ],
)
def test_default_labels(status: str | None, label: int | None) -> None:
    assert label_of(status) == label
    assert DEFAULT_POLICY.label_of(status) == label


def test_from_config_replaces_one_side_and_keeps_the_other() -> None:
    policy = LabelPolicy.from_config({"positive": ["sal", "SQL", "CLOSED_WON"]})
    assert policy.positive == {"SAL", "SQL", "CLOSED_WON"}
    assert policy.negative == DEFAULT_POLICY.negative
    assert policy.label_of("SAL") == 1
    assert LabelPolicy.from_config(None) == DEFAULT_POLICY
    assert LabelPolicy.from_config({}) == DEFAULT_POLICY


def test_closed_lost_can_be_made_neutral() -> None:
    policy = LabelPolicy.from_config({"negative": ["DISQUALIFIED", "BAD_FIT"]})
    assert policy.label_of("CLOSED_LOST") is None
    assert policy.label_of("BAD_FIT") == 0


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"positive": ["SQL"], "negative": ["SQL"]}, "both positive and negative"),
        ({"positive": ["WON"]}, "unknown lead status"),
        ({"positive": "SQL"}, "non-empty list"),
        ({"positive": []}, "non-empty list"),
        ({"negative": [3]}, "unknown lead status"),
        ({"neutral": ["MQL"]}, "unknown keys"),
    ],
)
def test_bad_configuration_is_refused_with_the_key(section: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        LabelPolicy.from_config(section)


def test_not_a_table() -> None:
    with pytest.raises(ValueError, match="must be a table"):
        LabelPolicy.from_config(["SQL"])  # type: ignore[arg-type]
