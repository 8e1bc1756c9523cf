"""Simulated registers: exact counts, movers, truth definitions, baselines, presets, scale."""

import sys
import tomllib

import numpy as np
import pandas as pd
import pytest
from scipy import integrate

from munirank.errors import InputError
from munirank.simulation.presets import akf_counts, preset
from munirank.simulation.register import simulate_register, write_register

simulate_module = sys.modules["munirank.simulation.register"]


@pytest.fixture(scope="module")
def dk():
    return simulate_register("dk-1999-2005", 1)


@pytest.fixture(scope="module")
def tiny():
    return simulate_register("tiny", 3)


def test_dk_counts_are_exact(dk):
    counts = dk["spells"].groupby("municipality").size()
    assert counts.sum() == 23563
    for name, n in akf_counts():
        assert counts[name] == n
    assert len(counts) == 271
    assert counts.drop([k for k, _ in akf_counts()]).max() < 80  # small ones stay unranked


def test_tiny_counts_and_names_are_kept(tiny):
    counts = tiny["spells"].groupby("municipality").size()
    assert counts.to_dict() == dict(preset("tiny").named_counts)
    assert list(tiny["truth"]["municipality"]) == [f"M{i:02d}" for i in range(1, 21)]
    assert {"true_top5", "true_bottom5"} <= set(tiny["truth"].columns)


def test_movers_have_a_censored_then_a_delayed_entry_episode(dk):
    s = dk["spells"]
    per_person = s.groupby("person_id").size()
    assert set(per_person.unique()) <= {1, 2}
    movers = s[s["person_id"].isin(per_person[per_person == 2].index)].sort_values(
        ["person_id", "start"])
    first, second = movers.iloc[::2], movers.iloc[1::2]
    assert (first["start"] == 0).all() and (first["event"] == 0).all()
    assert (first["outcome"] == "none").all()
    assert (second["start"].to_numpy() == first["stop"].to_numpy()).all()
    assert (second["start"] > 0).all() and (second["stop"] > second["start"]).all()
    assert (second["municipality"].to_numpy() != first["municipality"].to_numpy()).all()
    assert 0.08 < len(second) / len(s) < 0.12  # about 10 % mover episodes
    assert (s.loc[s["start"] == 0, "stop"] >= 1).all()


def test_outcome_column_matches_event(dk):
    s = dk["spells"]
    assert set(s["outcome"]) == {"self_support", "education", "none"}
    assert ((s["outcome"] != "none") == (s["event"] == 1)).all()


def _tiny_eta(data: dict, p) -> tuple[pd.DataFrame, np.ndarray]:
    """The true linear predictor of each tiny episode, written out by hand."""
    s, mun, truth = data["spells"], data["municipal"], data["truth"]
    z = (mun["unemployment"] - mun["unemployment"].mean()) / mun["unemployment"].std(ddof=0)
    muni = pd.Series(-0.2 * z.to_numpy(), index=mun["municipality"])
    u = truth.set_index("municipality")["true_log_hr"]
    eta0 = (0.4 * s["male"] - 0.03 * (s["age"] - 30.0) + muni[s["municipality"]].to_numpy())
    return s.assign(eta0=eta0.to_numpy(), u=u[s["municipality"]].to_numpy()), muni.to_numpy()


def _effect_by_quad(episodes: pd.DataFrame, survival) -> float:
    def rmst(eta: float) -> float:
        return integrate.quad(lambda t: survival(eta, t), 0.0, 48.0, epsabs=1e-10)[0]
    observed = np.mean([rmst(e + u) for e, u in zip(episodes["eta0"], episodes["u"],
                                                    strict=True)])
    expected = np.mean([rmst(e) for e in episodes["eta0"]])
    return observed - expected


@pytest.mark.parametrize("baseline", ["weibull", "loglogistic"])
def test_truth_effect_months_recomputed_by_quadrature(baseline):
    p = preset("tiny")
    data = simulate_register("tiny", 5, baseline=baseline)
    episodes, _ = _tiny_eta(data, p)
    rate, alpha, kappa = p.base_rate_per_month, p.alpha, p.loglogistic_shape
    median = (np.log(2) / rate) ** (1 / alpha)

    def survival(eta: float, t: float) -> float:
        if baseline == "weibull":
            return np.exp(-np.exp(eta) * rate * t**alpha)
        return 1.0 / (1.0 + np.exp(eta) * (t / median) ** kappa)

    truth = data["truth"].set_index("municipality")
    for name in ["M20", "M19", "M12"]:
        mine = _effect_by_quad(episodes[episodes["municipality"] == name], survival)
        assert truth.loc[name, "true_effect_months"] == pytest.approx(mine, abs=2e-3)
    assert truth["true_rank"].sort_values().tolist() == list(range(1, 21))
    fastest = truth["true_effect_months"].idxmin()
    assert truth.loc[fastest, "true_rank"] == 1 and truth.loc[fastest, "true_top5"]


def test_piecewise_rmst_matches_quadrature():
    knots = np.array([0.0, 12.0, 24.0, 36.0, 48.0, 60.0, 1e5])
    values = np.array([[0.0, 0.05, 0.13, 0.25, 0.38, 0.5, 1e3],
                       [0.0, 0.07, 0.17, 0.32, 0.55, 0.8, 2e3]])
    eta = np.array([-0.5, 0.0, 0.7, 1.2])
    cohort = np.array([0, 1, 0, 1])
    for link, psi in (("ph", lambda x: np.exp(-x)), ("po", lambda x: 1 / (1 + x))):
        base = simulate_module.Baseline(link, knots=knots, values=values)
        got = base.rmst(eta, cohort, 48.0)
        for e, c, g in zip(eta, cohort, got, strict=True):
            ref = integrate.quad(lambda t, e=e, c=c, psi=psi: psi(np.exp(e) * np.interp(t, knots,
                                 values[c])), 0, 48, points=[12, 24, 36])[0]
            assert g == pytest.approx(ref, rel=1e-8)


def test_event_times_follow_the_survival_curve():
    base = simulate_module.Baseline("ph", knots=np.array([0.0, 12.0, 24.0, 1e5]),
                                    values=np.array([[0.0, 0.3, 0.9, 1e4]]))
    rng = np.random.default_rng(0)
    n = 40_000
    t = base.event_time(np.full(n, 1.0), np.zeros(n), np.zeros(n, np.intp), rng.random(n))
    assert (t <= 12).mean() == pytest.approx(1 - np.exp(-0.3), abs=0.01)
    assert (t <= 24).mean() == pytest.approx(1 - np.exp(-0.9), abs=0.01)


def test_stratified_uniforms_cover_each_group_evenly():
    rng = np.random.default_rng(1)
    groups = np.array([0] * 50 + [2] * 30)
    u = simulate_module.stratified_uniforms(groups, rng)
    for g, n in ((0, 50), (2, 30)):
        cells = np.floor(np.sort(u[groups == g]) * n)
        assert (cells == np.arange(n)).all()


def test_dk_structure_effects_months_not_years(dk):
    truth = dk["truth"]
    ranked = truth[truth["municipality"].isin([k for k, _ in akf_counts()])]
    spread = ranked["true_effect_months"].max() - ranked["true_effect_months"].min()
    assert 10 < spread < 20
    assert np.allclose(truth["true_effect_months"],
                       truth["true_observed_months"] - truth["true_expected_months"])


def test_loglogistic_and_student_t_options():
    ll = simulate_register("dk-1999-2005", 2, baseline="loglogistic")
    t = simulate_register("tiny", 2, effect_dist="student_t", effect_sd=0.2)
    assert ll["spells"]["event"].between(0, 1).all()
    assert np.isfinite(ll["truth"]["true_effect_months"]).all()
    assert 0.25 < ll["spells"]["event"].mean() < 0.45
    assert np.isfinite(t["truth"]["true_log_hr"]).all()
    with pytest.raises(InputError):
        simulate_register("tiny", 1, effect_dist="cauchy")
    with pytest.raises(InputError):
        simulate_register("tiny", 1, baseline="gompertz")


def test_student_t_effects_have_the_requested_sd():
    draws = simulate_module.draw_effects(preset("tiny"), 200_000, np.random.default_rng(4))
    heavy = simulate_module.draw_effects(
        simulate_module.replace(preset("tiny"), effect_dist="student_t"), 200_000,
        np.random.default_rng(4))
    assert draws.std() == pytest.approx(0.4, rel=0.02)
    assert heavy.std() == pytest.approx(0.4, rel=0.05)
    assert np.abs(heavy).max() > np.abs(draws).max()


def test_scale_multiplies_spells_exactly():
    big = simulate_register("dk-1999-2005", 1, scale=2.0)
    counts = big["spells"].groupby("municipality").size()
    assert counts.sum() == 2 * 23563 and len(counts) == 271
    assert all(counts[name] == 2 * n for name, n in akf_counts()[:10])
    tiny2 = simulate_register("tiny", 1, scale=3)
    assert len(tiny2["spells"]) == 3 * sum(n for _, n in preset("tiny").named_counts)


def test_norwegian_preset_answers_the_network_question():
    data = simulate_register("no-2012-2018", 1)
    s, mun = data["spells"], data["municipal"]
    assert len(s) == 45000 and mun["municipality"].nunique() == 356
    assert s.groupby("municipality").size()["Oslo"] == 4200
    assert 0.25 < mun["efficiency_network"].mean() < 0.42
    assert set(s["start_year"]) == set(range(2012, 2019))
    assert set(s["outcome"]) == {"work", "education", "none"}
    truth = data["truth_covariates"].set_index("covariate")
    assert truth.loc["efficiency_network", "true_log_hr_per_unit"] == pytest.approx(0.10)


def test_write_register_writes_a_ready_to_fit_folder(tmp_path):
    out = write_register("dk-1999-2005", 1, tmp_path / "dk")
    assert sorted(f.name for f in out.iterdir()) == [
        "municipal.csv", "spec.toml", "spells.csv", "truth.csv"]
    spec = tomllib.loads((out / "spec.toml").read_text())
    assert spec["data"]["time_unit"] == "weeks"
    assert "permit_year" in spec["covariates"]["categorical"]
    assert len(spec["ranking"]["subset"]) == 72


@pytest.mark.parametrize("name", ["akf2006", "minimal", "no2012"])
def test_model_specs_load(name):
    from pathlib import Path

    from munirank.input.spec import check_spec, load_spec

    spec = load_spec(Path(__file__).parents[2] / "models" / f"{name}.toml")
    check_spec(spec)
    if name == "akf2006":
        assert spec.covariates.municipal == tuple(preset("dk-1999-2005").municipal)
        assert len(spec.ranking.subset) == 72
    if name == "no2012":
        assert "efficiency_network" in spec.covariates.municipal
