"""The numpy Kaplan-Meier against lifelines on random registers."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from munirank.checking.kaplan_meier import TooFewEarlyEntries, km_curve


def _lifelines(entry, exit, event, ci_prob):
    from lifelines import KaplanMeierFitter

    kmf = KaplanMeierFitter(alpha=1 - ci_prob)
    kmf.fit(exit, event_observed=event, entry=entry)
    curve, ci = kmf.survival_function_.iloc[:, 0], kmf.confidence_interval_
    return (curve.index.to_numpy(), curve.to_numpy(), ci.iloc[:, 0].to_numpy(),
            ci.iloc[:, 1].to_numpy())


@pytest.mark.parametrize("ci_prob", [0.9, 0.95])
def test_equal_to_lifelines_on_random_registers_with_ties_and_delayed_entry(ci_prob):
    from lifelines.exceptions import StatError

    rng = np.random.default_rng(11)
    compared = raised = 0
    for _ in range(250):
        n = int(rng.integers(1, 60))
        exit = np.round(rng.exponential(10, n) + 0.5, int(rng.integers(0, 2)))
        entry = np.where(rng.random(n) < 0.3, np.floor(exit * rng.random(n)), 0.0)
        event = (rng.random(n) < 0.7).astype(int)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                expected = _lifelines(entry, exit, event, ci_prob)
        except StatError:
            with pytest.raises(TooFewEarlyEntries):
                km_curve(entry, exit, event, ci_prob=ci_prob)
            raised += 1
            continue
        got = km_curve(entry, exit, event, ci_prob=ci_prob)
        for g, e in zip(got, expected, strict=True):
            np.testing.assert_allclose(g, e, rtol=0, atol=1e-12, equal_nan=True)
        compared += 1
    assert compared > 200 and raised > 0  # both branches were exercised
