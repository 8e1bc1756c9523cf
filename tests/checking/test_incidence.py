"""Aalen-Johansen with delayed entry against lifelines, and the incidence.csv table."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import fake_outcome_posterior
from munirank.checking.incidence import (
    COLUMNS,
    aalen_johansen,
    aalen_johansen_tables,
    incidence_table,
)
from munirank.checking.kaplan_meier import km_curve
from munirank.checking.predictive import survival_groups


def _register(seed: int, n: int = 400):
    rng = np.random.default_rng(seed)
    entry = np.where(rng.random(n) < 0.2, rng.uniform(0, 10, n), 0.0)
    exit_ = entry + rng.exponential(20, n)
    outcome = np.where(rng.random(n) < 0.6, rng.integers(0, 2, n), -1)
    return entry, exit_, outcome


@pytest.mark.parametrize("seed", [1, 2])
def test_aalen_johansen_equals_lifelines_on_untied_times(seed):
    from lifelines import AalenJohansenFitter

    entry, exit_, outcome = _register(seed)
    grid = np.array([1.0, 5.0, 12.0, 30.0])
    est, lo, hi = aalen_johansen(entry, exit_, outcome, 2, grid, ci_prob=0.9)
    for k in range(2):
        ajf = AalenJohansenFitter(calculate_variance=True, alpha=0.1)
        ajf.fit(exit_, outcome + 1, event_of_interest=k + 1, entry=entry)
        cif = ajf.cumulative_density_.iloc[:, 0]
        ref = cif.reindex(cif.index.union(grid)).ffill().loc[grid].to_numpy()
        assert est[:, k] == pytest.approx(ref, abs=1e-10)
        ci = ajf.confidence_interval_cumulative_density_
        ref_lo = ci.iloc[:, 0].reindex(ci.index.union(grid)).ffill().loc[grid].to_numpy()
        assert lo[:, k] == pytest.approx(ref_lo, abs=1e-6)
    assert (lo <= est).all() and (est <= hi).all()


def test_aalen_johansen_sums_to_one_minus_kaplan_meier_with_ties():
    entry, exit_, outcome = _register(3)
    exit_ = np.ceil(exit_)  # whole months: ties everywhere
    grid = np.arange(0.0, 40.0)
    est, _, _ = aalen_johansen(entry, exit_, outcome, 2, grid)
    times, surv, _, _ = km_curve(entry, exit_, outcome >= 0)
    km = surv[np.searchsorted(times, grid, side="right") - 1]
    km[grid < times[0]] = 1.0
    assert est.sum(axis=1) == pytest.approx(1.0 - km, abs=1e-10)


def test_incidence_table(outcome_episodes):
    groups = survival_groups(outcome_episodes)
    observed = aalen_johansen_tables(outcome_episodes, groups, min_cell=5)
    table = incidence_table(fake_outcome_posterior(outcome_episodes), outcome_episodes,
                            groups=groups, observed=observed)
    assert table.columns.tolist() == COLUMNS
    national = table[(table["group"] == "national") & (table["month"] == 48)]
    assert len(national) == 2
    assert (national["pred_lo"] <= national["pred_mean"]).all()
    assert (national["pred_mean"] <= national["pred_hi"]).all()
    assert table.loc[table["month"] == 0, "pred_mean"].abs().max() == 0
    # monotone in time per group and outcome
    for _, part in table.groupby(["group", "outcome"]):
        assert (np.diff(part["pred_mean"].to_numpy()) >= -1e-12).all()
