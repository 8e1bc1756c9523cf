r"""``munirank study``: simulation studies on dask.distributed, both methods scored against truth.

Each replicate ``r`` simulates a register from a preset (seed drawn from ``(seed, r)`` by
:class:`numpy.random.SeedSequence`, so a replicate is the same wherever and whenever it runs),
runs :func:`munirank.established.comparison.compare` on it (the Bayesian fit and the AKF-style
frequentist benchmark on the same episodes) in a scratch folder that is deleted afterwards, and
scores both against ``truth.csv``:

- coverage: share of municipalities whose true effect in months lies in the equal-tailed
  50 % and 90 % posterior intervals (Bayesian, from the effect draws) or in the Wald
  intervals ``effect +- z se`` (frequentist, estimable municipalities);
- Spearman between true and estimated effects, RMSE of the effect in months and how many of
  the true top k each method puts in its top k
  (:func:`munirank.established.comparison.truth_scores`);
- calibration of ``p_top{k}`` and ``p_bottom{k}``: reliability bins of width 0.1 with
  counts, mean predicted probability and observed frequency, and the Brier score
  :math:`\frac1M \sum_m (p_m - y_m)^2`;
- frequentist: how often a starred top-k municipality (rank <= k under the cut-off, starred,
  faster than average) is truly top k, and how many true top-k municipalities the cut-off
  drops.

Runs on dask.distributed: a :class:`~distributed.LocalCluster` (one single-threaded process
per worker) by default, an existing scheduler when an address is given. Tasks are plain
functions with plain arguments; every model is built and compiled inside its worker, each
worker with its own PyTensor compile directory and one BLAS/OpenMP/numba thread. Every
finished replicate is written at once (``replicates/rep_0007.json``, atomically) by the
worker and again by the client; a resumed study skips finished replicates, and tasks on a
lost worker are rescheduled by dask. Only aggregates are written.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats
from threadpoolctl import threadpool_limits

from munirank.errors import InputError, MissingExtra
from munirank.output import destinations, files

LEVELS = (0.5, 0.9)  # interval probabilities whose coverage is scored
BIN_EDGES = np.linspace(0.0, 1.0, 11)
TOLERANCE = 0.05  # calibrated: |observed - predicted| <= this in every bin with enough data
MIN_BIN = 50  # municipality-replicates a reliability bin needs to count as "enough data"
THREAD_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
              "VECLIB_MAXIMUM_THREADS": "1"}
"""One BLAS/OpenMP thread in each worker process (read when numpy loads). numba's threads are
set in the worker by :func:`configure_process` instead: numba compares NUMBA_NUM_THREADS in the
environment with its running threads at every compilation and fails when they differ, and
dask's nanny sets its pre-spawn variables in the parent process too."""
PRESET_OPTIONS = ("effect_sd", "effect_dist", "baseline", "scale", "n_small")
SAMPLING_OPTIONS = ("draws", "tune", "chains", "sampler")


# --- scoring (pure functions) -------------------------------------------------------------

def interval_coverage(lo: np.ndarray, hi: np.ndarray, true: np.ndarray) -> float:
    """Share of ``true`` values inside ``[lo, hi]`` (NaN bounds are left out)."""
    ok = ~(np.isnan(lo) | np.isnan(hi))
    return float(np.mean((lo[ok] <= true[ok]) & (true[ok] <= hi[ok]))) if ok.any() else np.nan


def draw_coverage(draws: np.ndarray, true: np.ndarray, level: float) -> float:
    """Coverage of equal-tailed ``level`` intervals from draws (sample axis 0)."""
    tail = (1 - level) / 2
    lo, hi = np.quantile(draws, [tail, 1 - tail], axis=0)
    return interval_coverage(lo, hi, true)


def wald_coverage(est: np.ndarray, se: np.ndarray, true: np.ndarray, level: float) -> float:
    """Coverage of ``est +- z se`` intervals with ``z`` the normal ``(1 + level) / 2`` point."""
    z = stats.norm.ppf((1 + level) / 2)
    return interval_coverage(est - z * se, est + z * se, true)


def reliability_counts(p: np.ndarray, y: np.ndarray) -> pd.DataFrame:
    """Per probability bin (width 0.1, the last closed): count, sum of p, sum of outcomes."""
    p, y = np.asarray(p, float), np.asarray(y, float)
    idx = np.clip(np.digitize(p, BIN_EDGES[1:-1]), 0, len(BIN_EDGES) - 2)
    nb = len(BIN_EDGES) - 1
    return pd.DataFrame({"bin": np.arange(nb), "lo": BIN_EDGES[:-1], "hi": BIN_EDGES[1:],
                         "n": np.bincount(idx, minlength=nb),
                         "sum_p": np.bincount(idx, weights=p, minlength=nb),
                         "sum_y": np.bincount(idx, weights=y, minlength=nb)})


def brier(p: np.ndarray, y: np.ndarray) -> float:
    """Brier score: mean squared difference between probability and 0/1 outcome."""
    return float(np.mean((np.asarray(p, float) - np.asarray(y, float)) ** 2))


def reliability_table(counts: pd.DataFrame, *, min_n: int = MIN_BIN,
                      tolerance: float = TOLERANCE) -> pd.DataFrame:
    """Pooled bins: mean predicted, observed frequency (Wilson 95 % interval), verdict."""
    t = counts.groupby(["bin", "lo", "hi"], as_index=False)[["n", "sum_p", "sum_y"]].sum()
    n = t["n"].to_numpy(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        t["mean_p"] = t["sum_p"] / n
        t["observed"] = t["sum_y"] / n
        z = stats.norm.ppf(0.975)
        centre = (t["observed"] + z**2 / (2 * n)) / (1 + z**2 / n)
        half = z * np.sqrt(t["observed"] * (1 - t["observed"]) / n + z**2 / (4 * n**2)) / (
            1 + z**2 / n)
    t["observed_lo"], t["observed_hi"] = centre - half, centre + half
    t["difference"] = t["observed"] - t["mean_p"]
    t["enough_data"] = t["n"] >= min_n
    t["within_tolerance"] = t["difference"].abs() <= tolerance
    return t.drop(columns=["sum_p", "sum_y"])


def frequentist_set_scores(comp: pd.DataFrame, truth: pd.DataFrame, k: int) -> dict[str, Any]:
    """Starred top-k municipalities that are truly top k; true top k dropped by the cut-off."""
    t = truth.set_index("municipality").loc[comp["municipality"]]
    true_top = t["true_rank"].to_numpy() <= k
    starred_top = ((comp["freq_rank"] <= k).fillna(False).to_numpy(bool)
                   & (comp["freq_stars"].fillna("") != "").to_numpy()
                   & (comp["freq_effect_months"] < 0).to_numpy())
    dropped = true_top & ~comp["in_cutoff"].to_numpy(bool)
    n = int(starred_top.sum())
    return {"starred_top_k": n, "starred_top_k_true": int((starred_top & true_top).sum()),
            "starred_top_k_precision": (starred_top & true_top).sum() / n if n else np.nan,
            "true_top_k_dropped_by_cutoff": int(dropped.sum())}


def score_replicate(comp: pd.DataFrame, effect_draws: np.ndarray, truth: pd.DataFrame,
                    truth_scores: dict[str, Any]) -> dict[str, Any]:
    """All scores of one replicate.

    Parameters
    ----------
    comp : pandas.DataFrame
        comparison.csv of the replicate (:func:`munirank.established.comparison.comparison_table`).
    effect_draws : numpy.ndarray
        Effect-in-months draws, shape (sample, municipality) in the order of ``comp``.
    truth : pandas.DataFrame
        truth.csv of the simulated register.
    truth_scores : dict
        :func:`munirank.established.comparison.truth_scores` of the replicate.

    Returns
    -------
    dict
        ``scores`` (method -> metric -> value) and ``reliability`` (p_top/p_bottom -> bins).
    """
    k = int(comp.attrs.get("top_k", truth_scores["top_k"]))
    t = truth.set_index("municipality").loc[comp["municipality"]]
    true_eff = t["true_effect_months"].to_numpy(float)
    n = len(t)
    true_rank = t["true_rank"].to_numpy()
    outcomes = {"p_top": true_rank <= k, "p_bottom": true_rank > n - k}
    bayes, freq = dict(truth_scores["bayes"]), dict(truth_scores["frequentist"])
    est, se = comp["freq_effect_months"].to_numpy(float), comp["freq_se"].to_numpy(float)
    for level in LEVELS:
        bayes[f"coverage_{level:g}"] = draw_coverage(effect_draws, true_eff, level)
        freq[f"coverage_{level:g}"] = wald_coverage(est, se, true_eff, level)
    reliability = {}
    for name, y in outcomes.items():
        p = comp[f"{name}{k}"].to_numpy(float)
        bayes[f"brier_{name}"] = brier(p, y)
        reliability[name] = reliability_counts(p, y).to_dict(orient="list")
    freq.update(frequentist_set_scores(comp, truth, k))
    sure = comp[f"p_top{k}"].to_numpy(float) >= 0.5
    bayes["p_top_k_ge_0.5"] = int(sure.sum())
    bayes["p_top_k_ge_0.5_precision"] = (float(outcomes["p_top"][sure].mean()) if sure.any()
                                         else np.nan)
    scores = {"bayes": bayes, "frequentist": freq,
              "frequentist_no_cutoff": dict(truth_scores["frequentist_no_cutoff"])}
    return {"top_k": k, "n_municipalities": n, "scores": scores, "reliability": reliability}


# --- one replicate, inside a worker -------------------------------------------------------

def replicate_seed(seed: int, index: int) -> int:
    """The seed of replicate ``index``: independent streams from ``(seed, index)``."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def replicate_path(out: str | Path, index: int) -> Path:
    """Where replicate ``index`` is written."""
    return Path(out) / "replicates" / f"rep_{index:04d}.json"


def _write_atomic(data: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(data, indent=1, sort_keys=True, default=_json_default) + "\n")
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def configure_process(compile_root: str | Path, name: str) -> str:
    """One thread for BLAS/OpenMP/numba and this worker's own PyTensor compile directory.

    PyTensor fixes its compile directory the first time it is used, which in a worker is
    after the worker process imported munirank (the spawned process re-runs the command's
    imports), so it is set both in ``PYTENSOR_FLAGS`` (for child processes) and on the
    config. Returns the compile directory in use.
    """
    os.environ.update(THREAD_ENV)
    import numba

    numba.set_num_threads(1)  # this thread's parallel loops (see THREAD_ENV)
    path = Path(compile_root) / re.sub(r"[^A-Za-z0-9_.-]+", "_", f"worker-{name}")
    flags = os.environ.get("PYTENSOR_FLAGS", "")
    if "compiledir=" not in flags:
        os.environ["PYTENSOR_FLAGS"] = ",".join(filter(None, [flags, f"compiledir={path}"]))
    import pytensor

    with contextlib.suppress(Exception):  # already in use: keep it (reported in the result)
        pytensor.config.compiledir = str(path)
    return str(pytensor.config.compiledir)


def _worker_name() -> str:
    try:
        from distributed import get_worker

        return str(get_worker().name)
    except (ImportError, ValueError):
        return f"pid{os.getpid()}"


def _scratch_root() -> str | None:
    """The worker's own directory: dask removes it on close and purges it after a crash."""
    try:
        from distributed import get_worker

        return str(get_worker().local_directory)
    except (ImportError, ValueError):
        return None


def _simulate_and_compare(preset: str, seed: int, scratch: Path, overrides: dict[str, Any],
                          sampling: dict[str, Any], cutoff: int | None) -> tuple[Any, Path]:
    from munirank.api import simulate
    from munirank.established.comparison import compare

    sim = simulate(preset, seed=seed, out=scratch / "sim", **overrides)
    res = compare(sim / "spells.csv", spec=sim / "spec.toml", out=scratch / "compare",
                  cutoff=cutoff, progressbar=False, seed=seed, **sampling)
    return res, sim


def run_replicate(preset: str, index: int, seed: int, out: str, overrides: dict[str, Any],
                  sampling: dict[str, Any], cutoff: int | None) -> dict[str, Any]:
    """Simulate, fit both methods, score and write replicate ``index`` (a dask task).

    Plain arguments only: the register, the model and its compiled functions are built here.
    A replicate already on disk is returned as it is.
    """
    path = replicate_path(out, index)
    if path.is_file():
        return json.loads(path.read_text())
    name = _worker_name()
    compiledir = configure_process(Path(out) / ".pytensor", name)
    t0 = time.perf_counter()
    rep_seed = replicate_seed(seed, index)
    scratch = Path(tempfile.mkdtemp(prefix=f"munirank-study-{index:04d}-", dir=_scratch_root()))
    try:
        with threadpool_limits(1):  # BLAS may be loaded before the worker's environment
            res, sim = _simulate_and_compare(preset, rep_seed, scratch, overrides, sampling,
                                             cutoff)
        truth = pd.read_csv(sim / "truth.csv", dtype={"municipality": str})
        draws = res.fit.tree["derived"]["effect_months"].stack(sample=("chain", "draw"))
        draws = draws.transpose("sample", "municipality").sel(
            municipality=res.comparison["municipality"].to_numpy())
        result = score_replicate(res.comparison, draws.to_numpy(), truth, res.truth_scores)
        d = res.fit.diagnostics
    finally:
        shutil.rmtree(scratch, ignore_errors=True)  # per-person rows never outlive the task
    result.update(
        index=index, seed=rep_seed, preset=preset, overrides=overrides,
        converged=bool(d["converged"]),
        diagnostics={k: d[k] for k in ("rhat_max", "ess_bulk_min", "ess_tail_min",
                                       "divergences", "draws", "tune", "chains")},
        seconds=round(time.perf_counter() - t0, 1), worker=name, pid=os.getpid(),
        compiledir=compiledir, fit_timings=getattr(res.fit, "timings", {}))
    _write_atomic(result, path)
    return result


# --- the study: orchestration on dask -----------------------------------------------------

def _check_options(preset: str, replicates: int, workers: int | None,
                   options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split options into preset overrides and sampling settings; raise InputError if bad."""
    from munirank.simulation.presets import Preset
    from munirank.simulation.presets import preset as get_preset

    if get_preset(preset).periods:  # issue 25: its own study (compare reads one period)
        raise InputError(f"study compares both methods on one period; for {preset!r} run "
                         "python -m munirank.studies.periods", option="--preset")
    if replicates < 1:
        raise InputError(f"must be at least 1, not {replicates}", option="--replicates")
    if workers is not None and workers < 1:
        raise InputError(f"must be at least 1, not {workers}", option="--workers")
    known = {f.name for f in fields(Preset)}
    unknown = set(options) - known - set(SAMPLING_OPTIONS)
    if unknown:
        raise InputError(f"unknown study option(s) {sorted(unknown)}; preset fields or "
                         f"{list(SAMPLING_OPTIONS)}")
    positive = ("effect_sd", "scale", "draws", "tune", "chains")
    for key in positive:
        if key in options and not options[key] > 0:
            raise InputError(f"must be positive, not {options[key]}",
                             option=f"--{key.replace('_', '-')}")
    if options.get("n_small", 0) < 0:
        raise InputError(f"must be at least 0, not {options['n_small']}", option="--n-small")
    overrides = {k: v for k, v in options.items() if k not in SAMPLING_OPTIONS}
    if "n_small" in overrides:  # the small ones no longer absorb a fixed spell total
        overrides["total"] = None
    sampling = {k: v for k, v in options.items() if k in SAMPLING_OPTIONS}
    return overrides, sampling


def _check_settings(out: Path, settings: dict[str, Any]) -> None:
    """A resumed study must use the settings it was started with."""
    path = out / "study.json"
    if path.is_file():
        old = json.loads(path.read_text())
        if old != json.loads(json.dumps(settings)):
            raise InputError(f"holds a study with other settings ({old}); use another --out",
                             file=str(path))


def _settings(out: Path, settings: dict[str, Any]) -> None:
    """Record the study's settings (once: a resumed study keeps them)."""
    path = out / "study.json"
    if not path.is_file():
        _write_atomic(settings, path)


@contextlib.contextmanager
def _running(out: Path) -> Iterator[None]:
    """Refuse a second study process on the same folder (it would rerun the same replicates)."""
    lock = out / ".running"
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        pid = int(lock.read_text() or 0)
        if _alive(pid):
            raise InputError(f"a study is already running on this folder (pid {pid})",
                             file=str(out)) from None
        lock.unlink()  # left by a process that was killed
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    with os.fdopen(fd, "w") as f:
        f.write(str(os.getpid()))
    try:
        yield
    finally:
        lock.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return pid > 0


def _require_dask() -> None:
    """Raise :class:`munirank.errors.MissingExtra` if dask.distributed is not installed."""
    import importlib.util

    if importlib.util.find_spec("distributed") is None:
        raise MissingExtra("munirank study", "study")


@contextlib.contextmanager
def _client(scheduler: str | None, workers: int | None) -> Iterator[Any]:
    import dask
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler) as client:
            yield client
        return
    # Set in the parent before each worker process is spawned (numpy reads them on import).
    env = {f"distributed.nanny.pre-spawn-environ.{k}": v for k, v in THREAD_ENV.items()}
    saved = {k: os.environ.get(k) for k in THREAD_ENV}  # the nanny sets them here as well
    try:
        with dask.config.set(env), LocalCluster(
                n_workers=workers or 2, threads_per_worker=1, processes=True,
                dashboard_address=None,  # no dashboard; its HTTP server on a free port
                scheduler_kwargs={"dashboard": False, "dashboard_address": ":0"}) as cluster, \
                Client(cluster) as client:
            yield client
    finally:  # the caller's process keeps its own settings (munirank.study from Python)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _progress(done: int, total: int, failed: int, t0: float) -> None:
    width = 30
    bar = "#" * round(width * done / total) + "-" * (width - round(width * done / total))
    line = (f"replicates [{bar}] {done}/{total} done"
            + (f", {failed} failed" if failed else "") + f", {time.perf_counter() - t0:.0f} s")
    end = "\r" if sys.stderr.isatty() and done < total else "\n"
    print(line, end=end, file=sys.stderr, flush=True)


def _run_on_dask(todo: list[int], total: int, args: dict[str, Any], scheduler: str | None,
                 workers: int | None, progressbar: bool) -> list[str]:
    """Submit the unfinished replicates; write each result as it arrives; return failures."""
    from distributed import as_completed

    out = args["out"]
    token = hashlib.sha1(str(Path(out).resolve()).encode()).hexdigest()[:8]
    failures: list[str] = []
    t0 = time.perf_counter()
    with _client(scheduler, workers) as client:
        futures = {client.submit(run_replicate, index=i, pure=False, retries=1,
                                 key=f"munirank-replicate-{token}-{i:04d}", **args): i
                   for i in todo}
        done = total - len(todo)
        if progressbar:
            _progress(done, total, 0, t0)
        for future in as_completed(futures):
            i = futures[future]
            try:
                result = future.result()
                if not replicate_path(out, i).is_file():  # the worker's disk may be elsewhere
                    _write_atomic(result, replicate_path(out, i))
            except Exception as err:  # noqa: BLE001 - one replicate's failure ends only it
                failures.append(f"replicate {i}: {type(err).__name__}: {err}")
            done += 1
            if progressbar:
                _progress(done, total, len(failures), t0)
    return failures


def load_replicates(out: str | Path, replicates: int) -> list[dict[str, Any]]:
    """The finished replicates among the first ``replicates``, in index order."""
    paths = (replicate_path(out, i) for i in range(replicates))
    return [json.loads(p.read_text()) for p in paths if p.is_file()]


def summary_table(results: list[dict[str, Any]]) -> pd.DataFrame:
    """Per method and metric: mean, SD, min, max over replicates (study_summary.csv)."""
    rows = [{"replicate": r["index"], "converged": r["converged"], "method": method,
             "metric": metric, "value": value}
            for r in results for method, scores in r["scores"].items()
            for metric, value in scores.items()]
    long = pd.DataFrame(rows)
    long["value"] = pd.to_numeric(long["value"], errors="coerce")
    g = long.groupby(["method", "metric"], sort=False)["value"]
    table = g.agg(["mean", "std", "min", "max", "count"]).reset_index()
    conv = long[long["converged"]].groupby(["method", "metric"], sort=False)["value"].mean()
    table["mean_converged"] = conv.reindex(pd.MultiIndex.from_frame(
        table[["method", "metric"]])).to_numpy()
    return table.rename(columns={"std": "sd", "count": "n_replicates"})


def pooled_reliability(results: list[dict[str, Any]], *, min_n: int = MIN_BIN) -> pd.DataFrame:
    """Reliability bins of p_top{k} and p_bottom{k}, pooled over replicates (reliability.csv)."""
    k = results[0]["top_k"]
    parts = []
    for name in ("p_top", "p_bottom"):
        counts = pd.concat([pd.DataFrame(r["reliability"][name]) for r in results])
        table = reliability_table(counts, min_n=min_n)
        table.insert(0, "probability", f"{name}{k}")
        parts.append(table)
    return pd.concat(parts, ignore_index=True)


def calibration_figure(reliability: pd.DataFrame):  # noqa: ANN201 - matplotlib Figure
    """Reliability diagrams: observed frequency against mean predicted probability per bin."""
    from matplotlib.figure import Figure

    names = list(dict.fromkeys(reliability["probability"]))
    fig = Figure(figsize=(4.2 * len(names), 4.2), layout="constrained")
    for ax, name in zip(fig.subplots(1, len(names), squeeze=False)[0], names, strict=True):
        t = reliability[(reliability["probability"] == name) & (reliability["n"] > 0)]
        ax.fill_between([0, 1], [-TOLERANCE, 1 - TOLERANCE], [TOLERANCE, 1 + TOLERANCE],
                        color="0.9", label=f"within {TOLERANCE:g}")
        ax.plot([0, 1], [0, 1], color="0.5", lw=0.8)
        ok = t["enough_data"].to_numpy(bool)
        err = np.clip(np.vstack([t["observed"] - t["observed_lo"],
                                 t["observed_hi"] - t["observed"]]), 0, None)
        for sel, style in ((ok, "o"), (~ok, "x")):
            ax.errorbar(t["mean_p"][sel], t["observed"][sel], yerr=err[:, sel], fmt=style,
                        color="#1b7837" if style == "o" else "#e08214", capsize=2,
                        label="enough data" if style == "o" else "few municipalities")
        for _, row in t.iterrows():
            ax.annotate(f"{int(row['n'])}", (row["mean_p"], row["observed"]), fontsize=7,
                        xytext=(4, -8), textcoords="offset points")
        ax.set(xlim=(0, 1), ylim=(0, 1), xlabel=f"predicted {name} (bin mean)",
               ylabel="observed frequency (95 % interval)", title=f"Calibration of {name}")
        ax.legend(fontsize=7, loc="upper left")
    return fig


def printed_table(summary: pd.DataFrame, reliability: pd.DataFrame, n_done: int,
                  n_converged: int, seconds: float) -> str:
    """The table the command prints."""
    wide = summary.pivot(index="metric", columns="method", values="mean")
    order = list(dict.fromkeys(summary["metric"]))
    cols = [c for c in ("bayes", "frequentist", "frequentist_no_cutoff") if c in wide]
    lines = [f"{n_done} replicates ({n_converged} converged), {seconds:.0f} s. "
             "Mean over replicates:", wide.loc[order, cols].round(3).to_string(na_rep="-"),
             "Calibration (pooled reliability bins; * = enough data):"]
    rel = reliability[reliability["n"] > 0].copy()
    rel["bin"] = [f"{a:.1f}-{b:.1f}" for a, b in zip(rel["lo"], rel["hi"], strict=True)]
    rel["enough"] = np.where(rel["enough_data"], "*", "")
    lines.append(rel[["probability", "bin", "n", "mean_p", "observed", "difference",
                      "enough"]].round(3).to_string(index=False))
    return "\n".join(lines)


def _verdicts(reliability: pd.DataFrame) -> dict[str, Any]:
    out = {}
    for name, t in reliability.groupby("probability", sort=False):
        enough = t[t["enough_data"]]
        out[str(name)] = {"bins_with_enough_data": len(enough),
                          f"calibrated_within_{TOLERANCE:g}": bool(
                              len(enough) and enough["within_tolerance"].all()),
                          "max_abs_difference": float(enough["difference"].abs().max())
                          if len(enough) else None}
    return out


def study(preset: str, replicates: int, out: str | Path, scheduler: str | None = None,
          workers: int | None = None, *, seed: int = 1, cutoff: int | None = 80,
          min_bin: int = MIN_BIN, progressbar: bool = True, overwrite: bool = False,
          **options: Any) -> dict[str, Any]:
    """Run (or resume) a simulation study and write its summaries (``munirank study``).

    Parameters
    ----------
    preset : str
        The preset every replicate is simulated from (``tiny``, ``dk-1999-2005``, ...).
    replicates : int
        Number of replicates; finished ones in ``out`` are not run again.
    out : str or Path
        Output folder: replicates/rep_NNNN.json, study.json, study_summary.csv,
        summary.json, reliability.csv, calibration.png.
    scheduler : str, optional
        Address of a running dask scheduler (its workers must see ``out``); default: a
        local cluster.
    workers : int, optional
        Worker processes of the local cluster (default 2).
    seed : int
        Base seed; replicate ``r`` uses :func:`replicate_seed` ``(seed, r)``.
    cutoff : int or None
        The frequentist cut-off (AKF: more than 80 spells).
    min_bin : int
        Reliability bins with fewer municipality-replicates are "not enough data".
    progressbar : bool
        Print replicates done.
    overwrite : bool
        Write into a folder that holds files munirank did not write (they are kept; see
        :mod:`munirank.output.destinations`). A folder of an earlier study is resumed.
    **options
        Preset overrides that make the study (``effect_sd``, ``scale``, ``n_small``,
        ``baseline``, ``effect_dist``) and sampling settings (``draws``, ``tune``,
        ``chains``, ``sampler``).

    Returns
    -------
    dict
        The content of summary.json, plus ``failures`` and the printed ``table``.

    Raises
    ------
    InputError
        On bad options, an ``out`` that holds a study with other settings, or one that munirank
        may not write into.
    MissingExtra
        If dask.distributed is not installed (``pip install 'munirank[study]'``).
    """
    from munirank.simulation.presets import OUTCOME_NAMES

    if preset in OUTCOME_NAMES:  # competing outcomes: recovery of each outcome's ranks
        from munirank.studies.outcome_recovery import outcome_study

        return outcome_study(preset, replicates, out, seed=seed, progressbar=progressbar,
                             overwrite=overwrite, **options)
    _require_dask()
    options = {k: v for k, v in options.items() if v is not None}
    overrides, sampling = _check_options(preset, replicates, workers, options)
    out = Path(out)
    settings = {"preset": preset, "seed": seed, "overrides": overrides, "sampling": sampling,
                "cutoff": cutoff}
    if destinations.claim_folder(out, overwrite=overwrite).command == "study":
        _check_settings(out, settings)
    destinations.prepare_folder(out, command="study", overwrite=overwrite)
    _settings(out, settings)
    t0 = time.perf_counter()
    todo = [i for i in range(replicates) if not replicate_path(out, i).is_file()]
    failures: list[str] = []
    if todo:
        args = {"preset": preset, "seed": seed, "out": str(out), "overrides": overrides,
                "sampling": sampling, "cutoff": cutoff}
        with _running(out):
            failures = _run_on_dask(todo, replicates, args, scheduler, workers, progressbar)
    results = load_replicates(out, replicates)
    if not results:
        raise StudyFailed(failures)
    return _write_summaries(out, results, failures, time.perf_counter() - t0, min_bin)


def _write_summaries(out: Path, results: list[dict[str, Any]], failures: list[str],
                     seconds: float, min_bin: int) -> dict[str, Any]:
    table = summary_table(results)
    rel = pooled_reliability(results, min_n=min_bin)
    n_conv = sum(r["converged"] for r in results)
    summary = {"replicates_done": len(results), "replicates_converged": n_conv,
               "failures": failures, "run_seconds": round(seconds, 1),
               "replicate_seconds_mean": float(np.mean([r["seconds"] for r in results])),
               "top_k": results[0]["top_k"], "calibration": _verdicts(rel),
               "tolerance": TOLERANCE, "min_bin": min_bin,
               "scores": {m: dict(zip(g["metric"], g["mean"], strict=True))
                          for m, g in table.groupby("method", sort=False)}}
    files.write_csv(table, out / "study_summary.csv")
    files.write_csv(rel, out / "reliability.csv")
    files.write_json(summary, out / "summary.json")
    calibration_figure(rel).savefig(out / "calibration.png", dpi=120)
    summary["table"] = printed_table(table, rel, len(results), n_conv, seconds)
    return summary


class StudyFailed(RuntimeError):
    """No replicate of a study finished; ``failures`` says why each one failed."""

    def __init__(self, failures: list[str]) -> None:
        self.failures = failures
        super().__init__("no replicate finished: " + "; ".join(failures))


def study_command(args: argparse.Namespace) -> int:
    """``munirank study``: run :func:`study` from parsed arguments; return the exit code."""
    opts = {k: getattr(args, k, None) for k in (*PRESET_OPTIONS, *SAMPLING_OPTIONS)}
    cutoff = None if getattr(args, "no_cutoff", False) else getattr(args, "cutoff", 80)
    try:
        result = study(args.preset, args.replicates, args.out, scheduler=args.scheduler,
                       workers=args.workers, seed=getattr(args, "seed", None) or 1,
                       cutoff=cutoff, progressbar=not getattr(args, "quiet", False),
                       overwrite=getattr(args, "overwrite", False), **opts)
    except StudyFailed as err:  # one line per replicate, no traceback; nothing summarised
        for failure in err.failures:
            print(f"munirank: error: {failure}", file=sys.stderr)
        print(f"munirank: error: no replicate of the study finished (-> {args.out})",
              file=sys.stderr)
        return 1
    print(result["table"])
    print(f"-> {args.out}")
    for failure in result["failures"]:
        print(f"munirank: warning: {failure}", file=sys.stderr)
    return 1 if result["failures"] else 0
