import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from munirank.cli import run
from munirank.errors import InputError
from munirank.studies import replicates as st

# --- scoring against hand-computed cases --------------------------------------------------

def test_interval_coverage_counts_inclusive_bounds_and_skips_nan():
    lo = np.array([0.0, 1.0, np.nan, -1.0])
    hi = np.array([1.0, 2.0, 3.0, 0.0])
    true = np.array([1.0, 0.5, 2.0, 0.0])  # in (bound), out, skipped, in (bound)
    assert st.interval_coverage(lo, hi, true) == pytest.approx(2 / 3)


def test_draw_coverage_uses_equal_tailed_intervals():
    draws = np.repeat(np.linspace(0, 1, 101)[:, None], 3, axis=1)  # quantiles are exact
    true = np.array([0.2, 0.3, 0.5])
    # 50 % interval [0.25, 0.75], 90 % interval [0.05, 0.95]
    assert st.draw_coverage(draws, true, 0.5) == pytest.approx(2 / 3)
    assert st.draw_coverage(draws, true, 0.9) == 1.0


def test_wald_coverage():
    est, se = np.array([0.0, 0.0, 0.0]), np.array([1.0, 1.0, np.nan])
    true = np.array([0.6, 1.7, 0.0])  # z(0.5) = 0.674, z(0.9) = 1.645
    assert st.wald_coverage(est, se, true, 0.5) == 0.5
    assert st.wald_coverage(est, se, true, 0.9) == 0.5


def test_reliability_counts_bins_and_brier():
    p = np.array([0.0, 0.05, 0.1, 0.15, 0.95, 1.0])
    y = np.array([0, 1, 0, 1, 1, 1])
    c = st.reliability_counts(p, y)
    assert c["n"].tolist() == [2, 2, 0, 0, 0, 0, 0, 0, 0, 2]
    assert c.loc[0, "sum_p"] == pytest.approx(0.05) and c.loc[0, "sum_y"] == 1
    assert c.loc[1, "sum_p"] == pytest.approx(0.25) and c.loc[9, "sum_y"] == 2
    expected = (0 + 0.95**2 + 0.01 + 0.85**2 + 0.05**2 + 0) / 6
    assert st.brier(p, y) == pytest.approx(expected)


def test_reliability_table_pools_and_judges_bins():
    a = st.reliability_counts(np.full(60, 0.05), np.r_[np.ones(3), np.zeros(57)])
    b = st.reliability_counts(np.full(40, 0.05), np.r_[np.ones(5), np.zeros(35)])
    t = st.reliability_table(pd.concat([a, b]), min_n=50)
    row = t.iloc[0]
    assert row["n"] == 100 and row["mean_p"] == pytest.approx(0.05)
    assert row["observed"] == pytest.approx(0.08) and row["enough_data"]
    assert row["within_tolerance"] and row["observed_lo"] < 0.08 < row["observed_hi"]
    assert not t.iloc[1]["enough_data"] and np.isnan(t.iloc[1]["observed"])


def _comp_and_truth():
    comp = pd.DataFrame({
        "municipality": ["A", "B", "C", "D", "E"],
        "freq_rank": pd.array([1, 2, 3, pd.NA, pd.NA], dtype="Int64"),
        "freq_stars": ["***", "*", "", "***", ""],
        "freq_effect_months": [-3.0, -2.0, -1.0, -4.0, 1.0],
        "freq_se": [1.0, 1.0, 1.0, 1.0, 1.0],
        "in_cutoff": [True, True, True, False, False],
        "p_top2": [0.9, 0.6, 0.3, 0.2, 0.0],
        "p_bottom2": [0.0, 0.1, 0.2, 0.3, 0.85],
    })
    comp.attrs["top_k"] = 2
    truth = pd.DataFrame({"municipality": ["E", "D", "C", "B", "A"],
                          "true_rank": [5, 1, 4, 3, 2],
                          "true_effect_months": [2.0, -4.5, 0.5, -1.0, -2.5]})
    return comp, truth


def test_frequentist_set_scores():
    comp, truth = _comp_and_truth()
    s = st.frequentist_set_scores(comp, truth, 2)
    # starred top 2: A (truly top 2), B (not); D is truly top 2 but under the cut-off
    assert s == {"starred_top_k": 2, "starred_top_k_true": 1, "starred_top_k_precision": 0.5,
                 "true_top_k_dropped_by_cutoff": 1}


def test_score_replicate_combines_all_scores():
    comp, truth = _comp_and_truth()
    true = truth.set_index("municipality").loc[comp["municipality"], "true_effect_months"]
    draws = true.to_numpy() + np.linspace(-1, 1, 201)[:, None] * np.array([1, 1, 1, 0.1, 5])
    ts = {"top_k": 2, "bayes": {"rmse_all": 1.0}, "frequentist": {"rmse_all": 2.0},
          "frequentist_no_cutoff": {"rmse_all": 2.0}}
    r = st.score_replicate(comp, draws, truth, ts)
    b, f = r["scores"]["bayes"], r["scores"]["frequentist"]
    assert b["coverage_0.5"] == 1.0 and b["rmse_all"] == 1.0
    assert b["brier_p_top"] == pytest.approx(st.brier(comp["p_top2"], [1, 0, 0, 1, 0]))
    assert b["brier_p_bottom"] == pytest.approx(st.brier(comp["p_bottom2"], [0, 0, 1, 0, 1]))
    assert b["p_top_k_ge_0.5"] == 2 and b["p_top_k_ge_0.5_precision"] == 0.5
    # |est - true| = 0.5, 1, 1.5, 0.5, 1 (se 1): inside z(0.9)=1.645 all five, z(0.5) two
    assert f["coverage_0.9"] == 1.0 and f["coverage_0.5"] == pytest.approx(2 / 5)
    assert r["reliability"]["p_bottom"]["n"][9] == 0 and r["reliability"]["p_bottom"]["n"][8] == 1


def test_replicate_seeds_are_deterministic_and_distinct():
    seeds = [st.replicate_seed(1, i) for i in range(50)]
    assert seeds == [st.replicate_seed(1, i) for i in range(50)]
    assert len(set(seeds)) == 50 and st.replicate_seed(2, 0) != seeds[0]


# --- bad options ----------------------------------------------------------------------------

@pytest.mark.parametrize("extra", [["--preset", "nowhere"], ["--replicates", "0"],
                                   ["--effect-sd", "-1"], ["--workers", "0"],
                                   ["--baseline", "gompertz"], ["--n-small", "-3"]])
def test_bad_options_exit_2_one_line(tmp_path, capsys, extra):
    args = ["study", "--preset", "tiny", "--replicates", "2", "--out", str(tmp_path / "s")]
    assert run(args + extra) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "error" in err
    assert extra[0] in err and "column" not in err  # an option is not a column
    assert not (tmp_path / "s" / "replicates").exists()


def test_unknown_api_option_is_an_input_error(tmp_path):
    with pytest.raises(InputError, match="unknown study option"):
        st.study("tiny", 1, tmp_path / "s", effect_size=0.2)


# --- orchestration, with a fake replicate (no sampling) ------------------------------------

def fake_replicate(preset, index, seed, out, overrides, sampling, cutoff):
    """A stand-in for run_replicate: scores of a synthetic replicate, after a short wait.

    Replicate 3 kills its worker process the first time it runs (a lost worker).
    """
    path = st.replicate_path(out, index)
    if path.is_file():
        return json.loads(path.read_text())
    marker = Path(out) / f"killed_{index}"
    if index == 3 and not marker.exists():
        marker.write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.3)
    rng = np.random.default_rng(st.replicate_seed(seed, index))
    p = rng.uniform(size=30)
    y = rng.uniform(size=30) < p
    result = {"index": index, "top_k": 10, "n_municipalities": 30, "converged": True,
              "seconds": 0.3, "worker": st._worker_name(), "pid": os.getpid(),
              "scores": {"bayes": {"brier_p_top": st.brier(p, y), "rmse_all": 1.0 + index},
                         "frequentist": {"rmse_all": 2.0}},
              "reliability": {k: st.reliability_counts(p, y).to_dict(orient="list")
                              for k in ("p_top", "p_bottom")}}
    st._write_atomic(result, path)
    return result


@pytest.fixture
def fake(monkeypatch):
    monkeypatch.setattr(st, "run_replicate", fake_replicate)


def test_study_survives_a_killed_worker_and_resume_skips_finished(tmp_path, fake):
    out = tmp_path / "study"
    st._settings(out, {"preset": "tiny", "seed": 1, "overrides": {}, "sampling": {},
                       "cutoff": 80})
    first = fake_replicate("tiny", 0, 1, str(out), {}, {}, 80)  # finished before a stop
    stamp0 = st.replicate_path(out, 0).stat().st_mtime_ns
    threads = (*st.THREAD_ENV, "NUMBA_NUM_THREADS")
    env_before = {k: os.environ.get(k) for k in threads}
    summary = st.study("tiny", 6, out, workers=2, progressbar=False)
    # the workers' one-thread settings stay out of the caller's process (dask's nanny sets
    # them there before each spawn, the killed worker's restart included)
    assert {k: os.environ.get(k) for k in threads} == env_before
    assert (out / "killed_3").exists()  # a worker did die mid-run
    assert summary["replicates_done"] == 6 and summary["failures"] == []
    assert st.replicate_path(out, 0).stat().st_mtime_ns == stamp0  # skipped, not rerun
    assert json.loads(st.replicate_path(out, 0).read_text()) == json.loads(json.dumps(first))
    reps = sorted((out / "replicates").glob("rep_*.json"))
    assert [p.name for p in reps] == [f"rep_{i:04d}.json" for i in range(6)]
    assert summary["scores"]["bayes"]["rmse_all"] == pytest.approx(3.5)
    for name in ("study_summary.csv", "reliability.csv", "summary.json", "calibration.png"):
        assert (out / name).is_file()
    rel = pd.read_csv(out / "reliability.csv")
    assert rel.groupby("probability")["n"].sum().tolist() == [180, 180]
    # resume: nothing is run again (no cluster), finished files are untouched
    stamps = {p.name: p.stat().st_mtime_ns for p in reps}
    (out / "killed_3").unlink()
    again = st.study("tiny", 6, out, workers=1, progressbar=False)
    assert again["replicates_done"] == 6 and not (out / "killed_3").exists()
    assert {p.name: p.stat().st_mtime_ns for p in reps} == stamps


def test_study_runs_on_an_existing_scheduler(tmp_path, fake):
    from distributed import Client, LocalCluster

    out = tmp_path / "study"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster:
        summary = st.study("tiny", 3, out, scheduler=cluster.scheduler_address,
                           progressbar=False)
        with Client(cluster) as client:
            pids = set(client.run(os.getpid).values())
    assert summary["replicates_done"] == 3 and summary["failures"] == []
    reps = [json.loads(st.replicate_path(out, i).read_text()) for i in range(3)]
    assert {r["pid"] for r in reps} <= pids  # run by that cluster's workers, not a new one


def test_resume_with_other_settings_is_refused(tmp_path):
    out = tmp_path / "study"
    st._settings(out, {"preset": "tiny", "seed": 1, "overrides": {}, "sampling": {},
                       "cutoff": 80})
    with pytest.raises(InputError, match="other settings"):
        st.study("tiny", 1, out, effect_sd=0.2, progressbar=False)


def test_a_second_study_process_on_the_same_folder_is_refused(tmp_path, capsys):
    from munirank.output.destinations import prepare_folder

    out = tmp_path / "study"
    prepare_folder(out, command="study")  # as the running study left it
    (out / ".running").write_text(str(os.getpid()))  # "another" live study process
    args = ["study", "--preset", "tiny", "--replicates", "1", "--out", str(out)]
    assert run(args) == 2
    assert "already running" in capsys.readouterr().err
    assert not (out / "replicates").exists()


def test_run_replicate_scores_and_writes_without_per_person_rows(tmp_path, monkeypatch):
    from types import SimpleNamespace

    import xarray as xr

    # configure_process sets a worker's thread and compile settings for good; not in the tests'
    # process (numba refuses another NUMBA_NUM_THREADS once its threads run): the slow real
    # replicate checks it in dask workers
    monkeypatch.setattr(st, "configure_process",
                        lambda root, name: str(Path(root) / f"worker-{name}"))
    comp, truth = _comp_and_truth()
    true = truth.set_index("municipality").loc[comp["municipality"], "true_effect_months"]
    draws = true.to_numpy() + np.linspace(-1, 1, 40).reshape(2, 20, 1)
    tree = {"derived": xr.Dataset({"effect_months": (("chain", "draw", "municipality"), draws)},
                                  coords={"municipality": comp["municipality"].to_numpy()})}
    diag = {"rhat_max": 1.0, "ess_bulk_min": 900.0, "ess_tail_min": 800.0, "divergences": 0,
            "draws": 20, "tune": 20, "chains": 2, "converged": True}
    ts = {"top_k": 2, "bayes": {"rmse_all": 1.0}, "frequentist": {"rmse_all": 2.0},
          "frequentist_no_cutoff": {"rmse_all": 2.0}}
    seen = {}

    def fake_compare(preset, seed, scratch, overrides, sampling, cutoff):
        sim = scratch / "sim"
        sim.mkdir(parents=True)
        truth.to_csv(sim / "truth.csv", index=False)
        (sim / "spells.csv").write_text("person rows\n")
        seen.update(seed=seed, scratch=scratch, overrides=overrides, sampling=sampling)
        res = SimpleNamespace(fit=SimpleNamespace(tree=tree, diagnostics=diag),
                              comparison=comp, truth_scores=ts)
        return res, sim

    monkeypatch.setattr(st, "_simulate_and_compare", fake_compare)
    out = tmp_path / "study"
    r = st.run_replicate("tiny", 7, 1, str(out), {"effect_sd": 0.2}, {"draws": 20}, 80)
    assert seen["seed"] == st.replicate_seed(1, 7) and seen["overrides"] == {"effect_sd": 0.2}
    assert not seen["scratch"].exists()  # the simulated register is gone
    saved = json.loads((out / "replicates" / "rep_0007.json").read_text())
    assert saved["index"] == 7 and saved["converged"] and saved["top_k"] == 2
    assert saved["scores"]["bayes"]["coverage_0.9"] == 1.0
    assert saved["compiledir"]  # recorded: which compile directory the worker used
    assert r["scores"]["frequentist"]["true_top_k_dropped_by_cutoff"] == 1
    # a finished replicate is returned as it is, not recomputed
    seen.clear()
    assert st.run_replicate("tiny", 7, 1, str(out), {}, {}, 80)["index"] == 7 and not seen


# --- one real replicate (sampling) ---------------------------------------------------------

@pytest.mark.slow
def test_real_replicate_on_a_local_cluster(tmp_path):
    out = tmp_path / "study"
    summary = st.study("tiny", 2, out, workers=2, progressbar=False, draws=200, tune=200,
                       chains=2)
    assert summary["replicates_done"] == 2
    reps = st.load_replicates(out, 2)
    dirs = {r["compiledir"] for r in reps}
    assert all(Path(d).parent == out / ".pytensor" for d in dirs)
    for r in reps:
        b = r["scores"]["bayes"]
        assert 0 <= b["coverage_0.5"] <= b["coverage_0.9"] <= 1
        assert -1 <= b["spearman_truth"] <= 1
    spells = sum(1 for _ in out.rglob("spells.csv"))
    assert spells == 0  # no per-person rows are left behind


def test_study_replaces_other_outputs_resumes_its_own_and_keeps_a_users_files(tmp_path, fake,
                                                                               capsys):
    from conftest import assert_keeps_a_users_files
    from munirank.output import destinations as dn

    theirs = tmp_path / "theirs"
    with dn.atomic_folder(theirs, command="fit") as tmp:
        (tmp / "municipalities.csv").write_text("a fit's\n")
    args = ["study", "--preset", "tiny", "--replicates", "2", "--workers", "1", "--quiet"]
    assert run([*args, "--out", str(theirs)]) == 0
    assert f"replaced the earlier output of `munirank fit` in {theirs}" in capsys.readouterr().err
    assert not (theirs / "municipalities.csv").exists()
    assert st.replicate_path(theirs, 1).is_file()
    assert run([*args, "--out", str(theirs)]) == 0
    assert "continuing the earlier `munirank study`" in capsys.readouterr().err
    assert_keeps_a_users_files(args, tmp_path / "user", "summary.json")


def failing_replicate(preset, index, seed, out, overrides, sampling, cutoff):
    raise ValueError(f"replicate {index} could not be simulated")


def test_a_study_where_every_replicate_fails_is_one_line_per_failure(tmp_path, monkeypatch,
                                                                      capsys):
    monkeypatch.setattr(st, "run_replicate", failing_replicate)
    code = run(["study", "--preset", "tiny", "--replicates", "2", "--workers", "1", "--quiet",
                "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert err.count("could not be simulated") == 2
    assert "no replicate of the study finished" in err


def test_a_study_without_dask_names_the_extra_to_install(tmp_path, monkeypatch, capsys):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "distributed" else real(name, *a))
    code = run(["study", "--preset", "tiny", "--replicates", "1", "--out", str(tmp_path / "s")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert "pip install 'munirank[study]'" in err and not (tmp_path / "s").exists()
