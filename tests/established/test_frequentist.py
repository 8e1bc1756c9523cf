"""The frequentist fixed-effects benchmark against an independent scipy fit, and its parts."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from scipy import optimize

from munirank.established import frequentist as fq
from munirank.input.episodes import as_codes, load_episodes
from munirank.posterior.effects import rmst_weibull


def profile_fit(episodes):
    """Independent ML fit of the same model with scipy.optimize (not lifelines).

    Given beta and alpha, each municipality's fixed effect has the closed form
    f_m = log(D_m / S_m), S_m = sum over m's episodes of exp(x beta) (t^alpha - s^alpha), so
    the profile log-likelihood in (beta, log alpha) is maximised by BFGS with its gradient.
    Returns log hazard ratios against the episode-weighted national average, beta and alpha.
    """
    codes = as_codes(episodes)
    x = episodes["x"].to_numpy()
    t, s = episodes["exit"].to_numpy(), episodes["entry"].to_numpy()
    d = episodes["event"].to_numpy().astype(float)
    n_m = episodes.sizes["municipality"]
    big_d = np.bincount(codes, weights=d, minlength=n_m)
    keep = big_d[codes] > 0
    codes, x, t, s, d = codes[keep], x[keep], t[keep], s[keep], d[keep]
    log_t, log_s = np.log(t), np.log(np.where(s > 0, s, 1.0))

    def negll(theta):
        beta, alpha = theta[:-1], np.exp(theta[-1])
        ex = np.exp(x @ beta)
        ta, sa = t**alpha, np.where(s > 0, s**alpha, 0.0)
        lam = ex * (ta - sa)
        big_s = np.bincount(codes, weights=lam, minlength=n_m)
        ok = big_d > 0
        ll = (d @ (np.log(alpha) + (alpha - 1) * log_t + x @ beta)
              + np.sum(big_d[ok] * (np.log(big_d[ok]) - np.log(big_s[ok]) - 1)))
        ratio = np.where(ok, big_d / np.where(ok, big_s, 1.0), 0.0)[codes]
        g_beta = d @ x - (ratio * lam) @ x
        g_alpha = d @ (1 + alpha * log_t) - ratio @ (ex * alpha * (ta * log_t - sa * log_s))
        return -ll, -np.append(g_beta, g_alpha)

    start = np.zeros(x.shape[1] + 1)
    res = optimize.minimize(negll, start, jac=True, method="BFGS", options={"gtol": 1e-9})
    beta, alpha = res.x[:-1], np.exp(res.x[-1])
    big_s = np.bincount(codes, weights=np.exp(x @ beta) * (t**alpha - np.where(s > 0, s**alpha, 0)),
                        minlength=n_m)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(big_d > 0, np.log(big_d) - np.log(big_s), np.nan)
    n = np.where(big_d > 0, episodes["n_spells"].to_numpy(), 0)
    w = n / n.sum()
    return f - np.nansum(w * f), beta, alpha


@pytest.fixture(scope="module")
def tiny_fit(tiny_episodes):
    return fq.fit_fixed_effects(tiny_episodes)


@pytest.fixture(scope="module")
def tiny_table(tiny_fit, tiny_episodes):
    return fq.benchmark_table(tiny_fit, tiny_episodes, cutoff=80)


def test_agrees_with_scipy_profile_fit_on_tiny(tiny_table, tiny_fit, tiny_episodes):
    log_hr, beta, alpha = profile_fit(tiny_episodes)
    np.testing.assert_allclose(tiny_table["freq_log_hr"], log_hr, atol=5e-4)
    np.testing.assert_allclose(tiny_fit.beta, beta, atol=5e-4)
    assert tiny_fit.alpha == pytest.approx(alpha, abs=5e-4)


@pytest.mark.slow
def test_agrees_with_scipy_profile_fit_on_dk(tmp_path):
    from munirank.input.spec import load_spec
    from munirank.simulation.register import write_register

    folder = write_register("dk-1999-2005", 1, tmp_path)
    episodes = load_episodes(folder / "spells.csv", load_spec(folder / "spec.toml"))
    fit = fq.fit_fixed_effects(episodes)
    table = fq.benchmark_table(fit, episodes)
    log_hr, beta, alpha = profile_fit(episodes)
    ok = table["freq_estimable"].to_numpy()
    assert ok.sum() > 250
    np.testing.assert_array_equal(np.isnan(log_hr), ~ok)
    np.testing.assert_allclose(table["freq_log_hr"][ok], log_hr[ok], atol=5e-4)
    np.testing.assert_allclose(fit.beta, beta, atol=5e-4)


def test_effect_and_se_columns(tiny_table):
    t = tiny_table
    assert (t["freq_observed_months"] - t["freq_expected_months"]).sub(
        t["freq_effect_months"]).abs().max() < 1e-10
    # faster (higher hazard) means a shorter duration
    assert (np.sign(t["freq_log_hr"]) == -np.sign(t["freq_effect_months"])).all()
    assert (t["freq_se"] > 0).all() and (t["freq_log_hr_se"] > 0).all()
    # the smallest municipality is the least precise
    assert t.loc[t["n_spells"].idxmin(), "freq_se"] == t["freq_se"].max()
    assert t["freq_p"].between(0, 1).all()


def test_effect_jacobian_matches_finite_differences(tiny_fit, tiny_episodes):
    w = fq.national_weights(tiny_fit, tiny_episodes["n_spells"].to_numpy())
    jac = fq.effect_jacobian(tiny_fit, tiny_episodes, w)

    def effect(fit):
        obs, exp, _, _ = fq._rmst_means(fit, tiny_episodes, w, fit.alpha)
        return obs - exp

    h = 1e-6
    k = len(tiny_fit.beta)
    muni3 = np.arange(len(tiny_fit.fe)) == 3
    bumps = {0: lambda f, e: replace(f, intercept=f.intercept + e),
             1: lambda f, e: replace(f, beta=f.beta + e * (np.arange(k) == 0)),
             int(fq._free_index(tiny_fit)[3]): lambda f, e: replace(f, fe=f.fe + e * muni3)}
    assert tiny_fit.municipality[3] != tiny_fit.reference
    for col, bump in bumps.items():
        numeric = (effect(bump(tiny_fit, h)) - effect(bump(tiny_fit, -h))) / (2 * h)
        np.testing.assert_allclose(jac[:, col], numeric, atol=1e-5)
    assert np.abs(jac[:, 1]).max() > 1e-3


def test_rmst_slope_is_the_derivative():
    eta = np.linspace(-3, 1, 9)
    h = 1e-6
    numeric = (rmst_weibull(eta + h, 1.3, 48.0, 48.0) - rmst_weibull(eta - h, 1.3, 48.0, 48.0))
    np.testing.assert_allclose(fq.rmst_slope(eta, 1.3, 48.0, 48.0), numeric / (2 * h),
                               rtol=1e-6)


def test_stars_follow_akf_levels():
    p = np.array([0.01, 0.05, 0.07, 0.1, 0.15, 0.2, 0.5, np.nan])
    assert fq.stars(p).tolist() == ["***", "**", "**", "*", "*", "", "", ""]


def test_cutoff_ranks_only_large_municipalities(tiny_table, tiny_fit, tiny_episodes):
    t = tiny_table
    assert (t["in_cutoff"] == (t["n_spells"] > 80)).all()
    assert t["freq_rank"].isna().eq(~t["in_cutoff"]).all()
    ranked = t.dropna(subset=["freq_rank"]).sort_values("freq_rank")
    assert ranked["freq_rank"].tolist() == list(range(1, len(ranked) + 1))
    assert ranked["freq_effect_months"].is_monotonic_increasing
    everyone = fq.benchmark_table(tiny_fit, tiny_episodes, cutoff=None)
    assert everyone["in_cutoff"].all()
    assert everyone["freq_rank"].tolist() == t["freq_rank_all"].tolist()


def test_zero_event_municipality_is_not_estimable(tiny_episodes):
    codes = as_codes(tiny_episodes)
    names = tiny_episodes["municipality"].to_numpy()
    target = int(np.argmin(tiny_episodes["n_spells"].to_numpy()))
    episodes = tiny_episodes.copy()
    episodes["event"] = episodes["event"].where(codes != target, 0)
    episodes["n_events"] = episodes["n_events"].where(np.arange(len(names)) != target, 0)
    table = fq.benchmark(episodes, cutoff=None)
    row = table.set_index("municipality").loc[names[target]]
    assert not row["freq_estimable"]
    assert np.isnan(row["freq_log_hr"]) and np.isnan(row["freq_effect_months"])
    assert row["freq_stars"] == "" and row["freq_rank"] is pd_na()
    others = table[table["freq_estimable"]]
    assert len(others) == len(names) - 1
    assert others["freq_se"].notna().all()
    assert sorted(others["freq_rank"]) == list(range(1, len(names)))


def pd_na():
    import pandas as pd

    return pd.NA
