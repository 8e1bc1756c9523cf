"""Model checking (issue 9): alternative effects, LOO table, rank and prior sensitivity, ppc."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from conftest import fake_posterior
from munirank.checking import alternatives as checks
from munirank.checking import predictive
from munirank.input.spec import BASELINES
from munirank.model.build import pointwise_loglik


def test_variants_change_one_thing_each(tiny_spec):
    names = [v.name for v in checks.variants(tiny_spec, has_municipal=True)]
    assert names[0] == "weibull"
    assert set(BASELINES) <= set(names)
    assert {"weibull_student_t", "weibull_no_municipal"} <= set(names)
    picked = checks.variants(tiny_spec, has_municipal=False, names=("lognormal",))
    assert [v.name for v in picked] == ["weibull", "lognormal"]


def test_an_unknown_model_is_named_with_the_known_ones(tiny_spec):
    from munirank.errors import InputError

    with pytest.raises(InputError, match=r"^option --models: unknown model\(s\) 'lognormall'; "
                       r"known: exponential, loglogistic, lognormal, piecewise_exponential, "
                       r"weibull_student_t$"):
        checks.variants(tiny_spec, has_municipal=False, names=("lognormall", "exponential"))


def test_cli_unknown_model_exit_2_nothing_written(tiny_dir, tmp_path, capsys):
    from munirank.cli import run

    out = tmp_path / "check"
    assert run(["check", str(tiny_dir / "spells.csv"), "--spec", str(tiny_dir / "spec.toml"),
                "--out", str(out), "--models", "exponential, nope"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "option --models: unknown model(s) 'nope'" in err
    assert not out.exists()


def test_cli_too_few_draws_for_loo_exit_2_nothing_written(tiny_dir, tmp_path, capsys):
    from munirank.cli import run

    out = tmp_path / "check"
    assert run(["check", str(tiny_dir / "spells.csv"), "--spec", str(tiny_dir / "spec.toml"),
                "--out", str(out), "--draws", "12", "--chains", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "option --draws: check needs at least 25 draws" in err
    assert "not 24" in err and not out.exists()


def test_rank_sensitivity_finds_the_largest_change():
    idx = pd.Index(["A", "B", "C", "D"], name="municipality")
    chosen = pd.DataFrame({"rank_mean": [1.0, 2, 3, 4], "p_top2": [0.9, 0.8, 0.2, 0.1]}, idx)
    other = pd.DataFrame({"rank_mean": [2.0, 1, 3, 4], "p_top2": [0.85, 0.9, 0.6, 0.0]}, idx)
    out = checks.rank_sensitivity(chosen, {"alt": other}, top_k=2).iloc[0]
    assert out["municipality"] == "C"
    assert out["max_abs_change_p_top2"] == pytest.approx(0.4)
    assert out["spearman_rank_mean"] == pytest.approx(0.8)
    assert out["top2_overlap"] == 2


@pytest.mark.parametrize("baseline", ["weibull", "loglogistic"])
def test_completion_table_blanks_small_cells(tiny_episodes, tiny_posterior, baseline):
    table = predictive.completion_table(tiny_posterior, tiny_episodes, baseline=baseline,
                                        min_cell=50)
    assert list(table.columns) == predictive.COMPLETION_COLUMNS
    assert table["group"].iloc[0] == predictive.NATIONAL
    assert len(table) == 3 * (tiny_episodes.sizes["municipality"] + 1)
    small = table["at_risk"].isna()
    assert small.any() and table.loc[small, ["observed", "consistent"]].isna().all().all()
    assert ((table["pred_lo"] <= table["pred_mean"]) & (table["pred_mean"] <= table["pred_hi"])
            ).all()
    summary = predictive.completion_summary(table)
    assert set(summary) == {"12", "24", "48"}


def test_prior_sensitivity_on_synthetic_draws(tiny_episodes, tiny_spec):
    rng = np.random.default_rng(2)
    post = fake_posterior(tiny_episodes, draws=200, seed=3)
    post["sigma"] = post["sigma"] + 0.05 * np.abs(rng.normal(size=post["sigma"].shape))
    loglik = pointwise_loglik(post, tiny_episodes)
    tree = xr.DataTree.from_dict({"posterior": post,
                                  "log_likelihood": xr.Dataset({"loglik": loglik})})
    out = checks.prior_sensitivity(tree, tiny_spec.model, tiny_episodes)
    assert {"alpha", "sigma"} <= set(out)
    assert any(k.startswith("beta[") for k in out)
    assert all(np.isfinite(v["prior"]) and v["likelihood"] >= 0 for v in out.values())


def test_check_on_tiny_writes_loo_table_without_person_data(tiny_dir, tiny_spec, tmp_path):
    """One short real run (two models, few draws): the table's shape and disclosure."""
    spec = tiny_spec.with_sampling(draws=150, tune=150, chains=2)
    result = checks.run_checks(tiny_dir / "spells.csv", spec=spec, out=tmp_path / "check",
                               models=("loglogistic",))
    loo = pd.read_csv(tmp_path / "check" / "loo.csv")
    assert list(loo.columns) == checks.LOO_COLUMNS
    assert sorted(loo["model"]) == ["loglogistic", "weibull"]
    # best model first, with elpd_diff 0; the others are below it (arviz-stats' sign)
    assert loo["elpd_diff"].iloc[0] == 0 and (loo["elpd_diff"] <= 0).all()
    assert loo["weight"].sum() == pytest.approx(1, abs=1e-6)
    assert (loo["n_pareto_k_gt_0_7"] >= 0).all()
    sens = pd.read_csv(tmp_path / "check" / "rank_sensitivity.csv")
    assert sens["model"].tolist() == ["loglogistic"] and -1 <= sens["spearman_rank_mean"][0] <= 1
    check = json.loads((tmp_path / "check" / "check.json").read_text())
    assert "alpha" in check["prior_sensitivity"] and check["chosen_model"] == "weibull"
    for model in check["models"].values():  # where each model's seconds went (bench: check)
        assert set(model["timings"]) == {"model_seconds", "compile_seconds", "draw_seconds",
                                         "diagnostics_seconds", "loo_seconds",
                                         "effects_ranks_seconds"}
        assert sum(model["timings"].values()) <= model["seconds"] + 0.1
        assert model["cpu_seconds"] > 0  # its own process's CPU while it was fitted
        assert model["process"] == 1  # one alternative: one process
        assert 0 <= model["start_seconds"] <= check["timings"]["read_seconds"] + sum(
            m["seconds"] for m in check["models"].values()) + 30  # stages and slack
    starts = {name: m["start_seconds"] for name, m in check["models"].items()}
    assert starts["weibull"] < starts["loglogistic"]  # the chosen model first
    assert set(check["timings"]) == {"read_seconds", "models_seconds", "compare_seconds",
                                     "prior_sensitivity_seconds", "completion_seconds"}
    n_ep = result["check"]["n_episodes"]
    for f in (tmp_path / "check").iterdir():  # aggregates only: no file has a row per episode
        if f.suffix == ".csv":
            assert len(pd.read_csv(f)) < n_ep


@pytest.mark.slow
def test_check_all_alternatives_on_tiny(tiny_dir, tiny_spec, tmp_path):
    spec = tiny_spec.with_sampling(draws=300, tune=300, chains=2)
    result = checks.run_checks(tiny_dir / "spells.csv", spec=spec, out=tmp_path / "check")
    assert len(result["loo"]) == len(BASELINES) + 2
    assert result["loo"]["converged"].dtype == bool


def test_the_chosen_models_draws_are_the_fits_and_a_rerun_gives_the_same_tables(
        tiny_dir, tiny_spec, tmp_path):
    """Same seed, same results: check's Weibull model is ``munirank fit``'s model, draw for
    draw, and a check with every other alternative in a second process
    (:mod:`munirank.checking.schedule`) writes the same tables as one in one process."""
    from munirank import api
    from munirank.input.episodes import load_episodes

    spec = tiny_spec.with_sampling(draws=40, tune=40, chains=2, seed=11)
    fit = api.fit(tiny_dir / "spells.csv", spec=spec, out=tmp_path / "fit", progressbar=False)
    episodes = load_episodes(tiny_dir / "spells.csv", spec)
    chosen = checks.variants(spec, has_municipal=True)[0]
    _, tree = checks.fit_variant(episodes, chosen, spec)
    want = fit.tree["posterior"].dataset
    got = tree["posterior"].dataset
    for name in ("alpha", "beta0", "beta", "gamma", "sigma", "u"):
        np.testing.assert_array_equal(got[name].values, want[name].values)
    tables = ("loo.csv", "rank_sensitivity.csv", "ranks_by_model.csv", "completion.csv")
    from munirank.checking import schedule

    for run, processes in (("a", 1), ("b", 2), ("c", 2)):
        if run == "c":  # the second process started before, as munirank check does
            schedule.start_early()
        checks.run_checks(tiny_dir / "spells.csv", spec=spec, out=tmp_path / run,
                          models=("lognormal", "exponential"), processes=processes)
    assert schedule._early is None  # taken and ended
    for name in tables:
        for run in ("b", "c"):
            assert (tmp_path / "a" / name).read_bytes() == (tmp_path / run / name).read_bytes()
    check = [json.loads((tmp_path / r / "check.json").read_text()) for r in ("a", "b")]
    assert [c["processes"] for c in check] == [1, 2]
    assert check[0]["prior_sensitivity"] == check[1]["prior_sensitivity"]
    clocks = ("seconds", "cpu_seconds", "timings", "process", "start_seconds")
    assert {m["process"] for m in check[1]["models"].values()} == {1, 2}
    for name, model in check[0]["models"].items():
        other = check[1]["models"][name]
        assert {k: v for k, v in model.items() if k not in clocks} == {
            k: v for k, v in other.items() if k not in clocks}
