"""``munirank study --preset dk-outcomes``: recovery of each outcome's effects and ranks.

For the competing-outcomes presets (:mod:`munirank.simulation.outcomes`) a replicate
simulates a register, fits it with ``[data] outcome`` (``munirank fit``; the frequentist
benchmark has no competing outcomes, so there is nothing to compare) and scores, per outcome
and for the combined outcome, the posterior against the truth:

- ``spearman_effect``: Spearman correlation of true and posterior mean effects in months;
- ``spearman_rank``: Spearman correlation of true ranks and posterior mean ranks;
- ``top_k_found``: how many of the true top k are in the k best posterior mean ranks;
- ``coverage_effect``: share of municipalities whose true effect in months lies in its
  interval (at the spec's ``ci_prob``; per outcome also ``coverage_log_hr``);
- ``brier_top_k``: Brier score of P(top k) against being truly in the top k.

Replicates run one after another in this process (each fit uses the chains' processes), are
written at once to ``replicates/rep_NNNN.json`` and skipped when the study is run again;
``study_summary.csv`` has mean, SD, min and max over replicates per outcome and score.
Aggregates only: the simulated registers live in a scratch folder deleted after each one.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

COMBINED = "combined"


def _scores(est: pd.DataFrame, truth: pd.DataFrame, k: int, *, log_hr: bool) -> dict[str, float]:
    m = est.merge(truth, on="municipality")
    top_est = set(m.nsmallest(k, "rank_mean")["municipality"])
    top_true = set(m[m["true_rank"] <= k]["municipality"])
    out = {
        "spearman_effect": float(stats.spearmanr(m["true_effect_months"],
                                                 m["effect_months_mean"])[0]),
        "spearman_rank": float(stats.spearmanr(m["true_rank"], m["rank_mean"])[0]),
        "top_k_found": float(len(top_est & top_true)),
        "coverage_effect": float(((m["true_effect_months"] >= m["effect_months_lo"])
                                  & (m["true_effect_months"] <= m["effect_months_hi"])).mean()),
        "brier_top_k": float(np.mean((m[f"p_top{k}"] - (m["true_rank"] <= k)) ** 2)),
    }
    if log_hr:
        out["coverage_log_hr"] = float(((m["true_log_hr"] >= m["log_hr_lo"])
                                        & (m["true_log_hr"] <= m["log_hr_hi"])).mean())
    return out


def score_outcome_fit(fit: Path, sim: Path, *, top_k: int) -> list[dict[str, Any]]:
    """One row of scores per outcome and for the combined outcome (module docstring)."""
    key = {"municipality": str}
    outcomes = pd.read_csv(fit / "outcomes.csv", dtype=key)
    truth = pd.read_csv(sim / "truth_outcomes.csv", dtype=key)
    rows = []
    for label, part in outcomes.groupby("outcome", sort=False):
        rows.append({"outcome": label, **_scores(part, truth[truth["outcome"] == label],
                                                 top_k, log_hr=True)})
    combined = pd.read_csv(fit / "municipalities.csv", dtype=key)
    rows.append({"outcome": COMBINED, **_scores(combined, pd.read_csv(sim / "truth.csv",
                                                                      dtype=key),
                                                top_k, log_hr=False)})
    return rows


def run_outcome_replicate(preset: str, index: int, seed: int, out: Path,
                          overrides: dict[str, Any], sampling: dict[str, Any]) -> dict[str, Any]:
    """Simulate, fit and score replicate ``index``; written to replicates/rep_NNNN.json."""
    from munirank.api import fit, simulate
    from munirank.input.spec import load_spec
    from munirank.studies.replicates import _write_atomic, replicate_path, replicate_seed

    path = replicate_path(out, index)
    if path.is_file():
        return json.loads(path.read_text())
    t0 = time.perf_counter()
    rep_seed = replicate_seed(seed, index)
    scratch = Path(tempfile.mkdtemp(prefix=f"munirank-outcomes-{index:04d}-"))
    try:
        sim = simulate(preset, seed=rep_seed, out=scratch / "sim", **overrides)
        result = fit(sim / "spells.csv", spec=sim / "spec.toml", out=scratch / "fit",
                     progressbar=False, seed=rep_seed, **sampling)
        top_k = load_spec(sim / "spec.toml").ranking.top_k
        rows = score_outcome_fit(scratch / "fit", sim, top_k=top_k)
        diag = result.diagnostics
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    record = {"index": index, "seed": rep_seed, "preset": preset, "scores": rows,
              "converged": bool(diag["converged"]), "rhat_max": diag["rhat_max"],
              "ess_bulk_min": diag["ess_bulk_min"], "divergences": diag["divergences"],
              "seconds": round(time.perf_counter() - t0, 1)}
    _write_atomic(record, path)
    return record


def outcome_summary(records: list[dict[str, Any]]) -> pd.DataFrame:
    """Mean, SD, min and max of every score over replicates, per outcome."""
    rows = pd.DataFrame([{**row, "replicate": r["index"]} for r in records
                         for row in r["scores"]])
    long = rows.melt(id_vars=["outcome", "replicate"], var_name="score").dropna()
    grouped = long.groupby(["outcome", "score"], sort=False)["value"]
    out = grouped.agg(["mean", "std", "min", "max", "count"]).reset_index()
    return out.rename(columns={"count": "replicates"})


def outcome_study(preset: str, replicates: int, out: str | Path, *, seed: int = 1,
                  progressbar: bool = True, overwrite: bool = False,
                  **options: Any) -> dict[str, Any]:
    """Run (or resume) a recovery study of a competing-outcomes preset (module docstring).

    Parameters
    ----------
    preset : str
        ``dk-outcomes`` or ``tiny-outcomes``.
    replicates : int
        Number of replicates.
    out : str or Path
        Output folder: replicates/, study.json, study_summary.csv, summary.json.
    seed : int
        Base seed (replicate r: ``replicate_seed(seed, r)``).
    progressbar : bool
        Print each replicate as it finishes.
    overwrite : bool
        Write into a folder that holds files munirank did not write.
    **options
        ``scale`` (the preset) and ``draws``, ``tune``, ``chains``, ``sampler``.

    Returns
    -------
    dict
        ``summary`` (records of study_summary.csv), ``table`` (printed) and ``failures``.
    """
    from munirank.errors import InputError
    from munirank.output import destinations

    options = {k: v for k, v in options.items() if v is not None}
    sampling = {k: options.pop(k) for k in ("draws", "tune", "chains", "sampler")
                if k in options}
    overrides = {k: options.pop(k) for k in ("scale",) if k in options}
    if options:
        name = sorted(options)[0]
        raise InputError(f"preset {preset!r} (competing outcomes) takes --scale and the "
                         "sampling options only", option=f"--{name.replace('_', '-')}")
    if replicates < 1:
        raise InputError("must be at least 1", option="--replicates")
    out = Path(out)
    destinations.prepare_folder(out, command="study", overwrite=overwrite)
    settings = {"preset": preset, "seed": seed, "overrides": overrides, "sampling": sampling}
    (out / "study.json").write_text(json.dumps(settings, indent=2) + "\n")
    records = []
    for index in range(replicates):
        records.append(run_outcome_replicate(preset, index, seed, out, overrides, sampling))
        if progressbar:
            print(f"study: replicate {index + 1} of {replicates} done", flush=True)
    summary = outcome_summary(records)
    summary.to_csv(out / "study_summary.csv", index=False)
    result = {"preset": preset, "replicates": len(records),
              "converged": sum(r["converged"] for r in records),
              "summary": summary.to_dict("records")}
    (out / "summary.json").write_text(json.dumps(result, indent=2, default=float) + "\n")
    table = summary.pivot(index="score", columns="outcome", values="mean")
    return {**result, "table": table.to_string(float_format=lambda v: f"{v:.3f}"),
            "failures": []}
