"""The referee's check: verdicts compared with the truth lead by lead, not counted."""

from __future__ import annotations

from streams.simulate import agreement


def test_swapped_verdicts_that_count_the_same_still_disagree():
    want = {("a", "FIRST_TOUCH"): "MET", ("b", "FIRST_TOUCH"): "BREACHED",
            ("c", "FIRST_TOUCH"): "PENDING", ("d", "FIRST_TOUCH"): "MET"}
    got = {("a", "FIRST_TOUCH"): "BREACHED", ("b", "FIRST_TOUCH"): "MET"}
    (row,) = agreement.compare(want, got).values()
    assert (row.agree, row.disagree, row.not_final, row.unexpected) == (0, 2, 1, 0)
    assert row.examples == ["a", "b"] and row.share == 0.0
    assert not agreement.agrees({"FIRST_TOUCH": row})
    assert "MISMATCH" in agreement.report_lines({"FIRST_TOUCH": row})[0]


def test_agreement_is_judged_per_clause_against_the_target():
    want = {(str(i), "STATUS_UPDATE"): "MET" for i in range(1000)}
    got = dict(want)
    got[("7", "STATUS_UPDATE")] = "BREACHED"
    rows = agreement.compare(want, got)
    assert rows["STATUS_UPDATE"].share == 0.999 and agreement.agrees(rows)
    got[("8", "STATUS_UPDATE")] = got[("9", "STATUS_UPDATE")] = "BREACHED"
    got[("10", "STATUS_UPDATE")] = got[("11", "STATUS_UPDATE")] = "BREACHED"
    got[("12", "STATUS_UPDATE")] = "BREACHED"
    assert not agreement.agrees(agreement.compare(want, got))  # 99.4 %


def test_corrections_count_only_those_the_truth_predicts():
    want = {("a", "FIRST_TOUCH"): "MET"}
    assert agreement.compare_corrections(want, {("a", "FIRST_TOUCH"): "MET",
                                                ("b", "FIRST_TOUCH"): "MET"}) == (1, 2, 1)
