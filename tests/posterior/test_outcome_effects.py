"""Effects in months of competing outcomes, tables and their disclosure (synthetic draws)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate

from conftest import fake_outcome_posterior
from munirank.input.spec import Spec
from munirank.posterior.outcome_tables import (
    combined_table,
    correlation_table,
    derived_outcome_draws,
    outcome_event_counts,
    outcome_table,
)
from munirank.posterior.outcomes import incidence_nodes, node_terms, outcome_effects
from munirank.simulation.outcomes import true_months


@pytest.fixture(scope="module")
def outcome_draws(outcome_episodes):
    return fake_outcome_posterior(outcome_episodes)


def test_quadrature_matches_adaptive_integration():
    """Months free of each outcome for one episode against scipy's quad (to 1e-4 months)."""
    alpha, eta, horizon = np.array([1.15, 0.7]), np.array([-4.0, -5.5]), 48.0

    def lam(t):
        return np.exp(eta) * t**alpha

    def integrand(w, k):  # s = horizon w^4 removes the s^(alpha - 1) singularity at 0
        s = horizon * w**4
        return (horizon - s) * alpha[k] * lam(s)[k] * np.exp(-lam(s).sum()) * 4 / w

    exact = [horizon - integrate.quad(integrand, 1e-12, 1.0, args=(k,), limit=200,
                                      epsabs=1e-10)[0] for k in range(2)]
    obs, _ = true_months(eta[None, :], np.zeros((1, 2)), alpha, np.zeros(1, int), 1, horizon)
    assert obs[0] == pytest.approx(exact, abs=1e-5)


def test_nodes_integrate_polynomials_exactly():
    nodes, weights = incidence_nodes(48.0)
    assert len(nodes) == 32 and weights.sum() == pytest.approx(48.0)
    assert weights @ nodes**3 == pytest.approx(48.0**4 / 4)
    c, g1, g2 = node_terms(np.ones((3, 2)), 48.0, 48.0)
    assert c.shape == g1.shape == g2.shape == (3, 32, 2)


def test_combined_effect_is_the_sum_of_the_outcomes(outcome_draws, outcome_episodes):
    eff = outcome_effects(outcome_draws, outcome_episodes)
    total = eff["effect_months_outcome"].sum("outcome")
    assert np.allclose(total, eff["effect_months"])
    assert float(eff["observed_months_outcome"].min()) > 0
    assert float(eff["observed_months_outcome"].max()) <= 48.0
    # a municipality with higher hazards of an outcome reaches it faster: negative effect
    u = outcome_draws["u"]
    pos = (u > 0.3).transpose(*eff["effect_months_outcome"].dims)
    assert bool((eff["effect_months_outcome"].where(pos) < 0).sum() == pos.sum())


def test_no_effects_no_difference(outcome_draws, outcome_episodes):
    eff = outcome_effects(outcome_draws.assign(u=outcome_draws["u"] * 0), outcome_episodes)
    assert np.abs(eff["effect_months_outcome"]).max() < 1e-9
    cif = eff["cif_observed"].sum("outcome")
    assert float(cif.min()) > 0 and float(cif.max()) < 1


def test_effects_use_at_most_max_draws(outcome_draws, outcome_episodes):
    eff = outcome_effects(outcome_draws, outcome_episodes, max_draws=20)
    assert eff.sizes["chain"] * eff.sizes["draw"] == 20


def test_tables(outcome_draws, outcome_episodes):
    spec = Spec()
    derived = derived_outcome_draws(outcome_draws, outcome_episodes, spec)
    table = outcome_table(outcome_draws, derived, outcome_episodes, spec, converged=True)
    labels = outcome_episodes["outcome"].to_numpy().tolist()
    n_m = outcome_episodes.sizes["municipality"]
    assert len(table) == 2 * n_m and table["outcome"].unique().tolist() == labels
    for label in labels:
        part = table[table["outcome"] == label]
        assert part["rank_mean"].mean() == pytest.approx((n_m + 1) / 2)
        # the mean rank follows the mean effect (rank 1 = fastest to that outcome)
        assert np.corrcoef(part["rank_mean"], part["effect_months_mean"])[0, 1] > 0.8
    combined = combined_table(derived, outcome_episodes, spec, converged=True)
    assert len(combined) == n_m and "effect_months_mean" in combined
    corr = combined[f"effect_corr[{labels[0]}~{labels[1]}]"]
    assert corr.between(-1, 1).all() and corr.std() > 0
    corr = correlation_table(outcome_draws)
    assert corr["parameter"].tolist() == ["rho", "sigma", "sigma"]
    assert corr.loc[0, "value_lo"] < corr.loc[0, "value_mean"] < corr.loc[0, "value_hi"]


def test_small_outcome_counts_are_blanked(outcome_episodes):
    ep = outcome_episodes.copy()
    counts = ep["n_events_outcome"].to_numpy().copy()
    counts[0] = [40, 3]
    ep["n_events_outcome"] = (("municipality", "outcome"), counts)
    ep["n_events"] = ep["n_events_outcome"].sum("outcome")
    ep["n_spells"] = ep["n_spells"].copy(data=np.maximum(ep["n_spells"].to_numpy(), 100))
    table = outcome_event_counts(ep, min_cell=5)
    first = table[table["municipality"] == str(ep["municipality"][0].item())]
    # 3 is small, and 40 would give it away from the total 43: both blank
    assert first["n_events_outcome"].isna().all()
    assert table["n_events_outcome"].notna().any()
