"""Calibration: scikit-learn's sigmoid folded into plain weights (exactly), the prefit path,
and the calibration table / ECE by hand."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression

from models.calibrate import (
    ISOTONIC,
    calibrate,
    calibration_table,
    expected_calibration_error,
    linear_form,
)


def _data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = (rng.random((n, 6)) < 0.3).astype(float)
    X[:, 5] = rng.integers(0, 4, n)
    logit = -1.2 + X @ np.array([1.5, -1.0, 0.5, 0.0, 0.8, 0.4])
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return X, y


@pytest.mark.parametrize("sparse", [False, True])
def test_linear_form_gives_the_calibrated_probability(sparse: bool) -> None:
    X, y = _data(800, 1)
    Xs = sp.csr_matrix(X) if sparse else X
    model = calibrate(LogisticRegression(C=0.1), Xs, y, folds=4)
    w, b = linear_form(model)
    X_new, _ = _data(300, 2)
    expected = model.predict_proba(sp.csr_matrix(X_new) if sparse else X_new)[:, 1]
    assert np.allclose(1 / (1 + np.exp(-(X_new @ w + b))), expected, rtol=0, atol=1e-12)
    # The calibrator did something: the folded weights are not the raw regression's.
    raw = model.calibrated_classifiers_[0].estimator.coef_[0]
    assert not np.allclose(w, raw)


def test_prefit_calibration_repairs_an_overconfident_model() -> None:
    X, y = _data(4000, 3)
    model = LogisticRegression().fit(X[:2000], y[:2000])
    model.coef_ = model.coef_ * 3  # overconfident on purpose
    model.intercept_ = model.intercept_ * 3
    X_test, y_test = _data(4000, 4)
    before = expected_calibration_error(y_test, model.predict_proba(X_test)[:, 1])
    fixed = calibrate(model, X[2000:], y[2000:], prefit=True)
    after = expected_calibration_error(y_test, fixed.predict_proba(X_test)[:, 1])
    assert before > 0.08
    assert after < 0.03
    w, b = linear_form(fixed)  # a frozen linear model folds as well
    assert np.allclose(1 / (1 + np.exp(-(X_test @ w + b))), fixed.predict_proba(X_test)[:, 1])


def test_isotonic_is_not_linear() -> None:
    X, y = _data(500, 5)
    model = calibrate(LogisticRegression(), X, y, method=ISOTONIC, folds=3)
    with pytest.raises(ValueError, match="sigmoid"):
        linear_form(model)


def test_calibration_needs_both_labels() -> None:
    X, _ = _data(50, 6)
    y = np.zeros(50, dtype=int)
    y[0] = 1
    with pytest.raises(ValueError, match="at least 2 examples of each label"):
        calibrate(LogisticRegression(), X, y)


def test_calibration_table_and_ece_by_hand() -> None:
    y = [0, 0, 1, 1]
    p = [0.2, 0.1, 0.9, 0.7]
    table = calibration_table(y, p, bins=2)
    assert [(b.low, b.high, b.count) for b in table] == [(0.1, 0.2, 2), (0.7, 0.9, 2)]
    assert table[0].expected == pytest.approx(0.15)
    assert table[0].observed == 0.0
    assert table[1].expected == pytest.approx(0.8)
    assert table[1].observed == 1.0
    # mean of |0.15 - 0| and |0.8 - 1|
    assert expected_calibration_error(y, p, bins=2) == pytest.approx(0.175)
    assert expected_calibration_error([0, 1], [0.0, 1.0]) == 0.0


def test_deciles_have_equal_counts() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(1000)
    y = (rng.random(1000) < p).astype(int)
    table = calibration_table(y, p)
    assert [b.count for b in table] == [100] * 10
    assert all(a.high <= b.low for a, b in zip(table, table[1:], strict=False))
    assert expected_calibration_error(y, p) < 0.06


def test_table_input_errors() -> None:
    with pytest.raises(ValueError, match="same length"):
        calibration_table([0, 1], [0.5])
    with pytest.raises(ValueError, match="no predictions"):
        expected_calibration_error([], [])
