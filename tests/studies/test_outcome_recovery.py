"""The recovery study of competing outcomes: scores per outcome, resumable, aggregates only."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from munirank.studies.outcome_recovery import COMBINED, outcome_summary, score_outcome_fit


def _fake_fit(tmp_path, truth_outcomes, truth, noise):
    rng = np.random.default_rng(0)
    fit = tmp_path / "fit"
    fit.mkdir()
    rows = []
    for label, part in truth_outcomes.groupby("outcome", sort=False):
        eff = part["true_effect_months"].to_numpy() + noise * rng.normal(size=len(part))
        rows.append(pd.DataFrame({
            "municipality": part["municipality"], "outcome": label,
            "effect_months_mean": eff, "effect_months_lo": eff - 1, "effect_months_hi": eff + 1,
            "log_hr_lo": part["true_log_hr"] - 0.1, "log_hr_hi": part["true_log_hr"] + 0.1,
            "rank_mean": pd.Series(eff).rank().to_numpy(), "p_top5": 0.0}))
    pd.concat(rows).to_csv(fit / "outcomes.csv", index=False)
    eff = truth["true_effect_months"].to_numpy()
    pd.DataFrame({"municipality": truth["municipality"], "effect_months_mean": eff,
                  "effect_months_lo": eff - 1, "effect_months_hi": eff + 1,
                  "rank_mean": pd.Series(eff).rank().to_numpy(),
                  "p_top5": (pd.Series(eff).rank() <= 5).astype(float)}).to_csv(
        fit / "municipalities.csv", index=False)
    return fit


def test_scores_per_outcome_and_combined(tmp_path, outcomes_dir):
    truth_outcomes = pd.read_csv(outcomes_dir / "truth_outcomes.csv", dtype={"kommune": str})
    truth = pd.read_csv(outcomes_dir / "truth.csv", dtype={"kommune": str})
    truth_outcomes = truth_outcomes.rename(columns={"kommune": "municipality"})
    truth = truth.rename(columns={"kommune": "municipality"})
    sim = tmp_path / "sim"
    sim.mkdir()
    truth_outcomes.to_csv(sim / "truth_outcomes.csv", index=False)
    truth.to_csv(sim / "truth.csv", index=False)
    rows = score_outcome_fit(_fake_fit(tmp_path, truth_outcomes, truth, 0.0), sim, top_k=5)
    assert [r["outcome"] for r in rows] == ["selvforsoergelse", "uddannelse", COMBINED]
    for r in rows:
        assert r["spearman_effect"] == pytest.approx(1.0) and r["top_k_found"] == 5
        assert r["coverage_effect"] == 1.0
    assert rows[-1]["brier_top_k"] == 0.0 and "coverage_log_hr" not in rows[-1]
    summary = outcome_summary([{"index": 0, "scores": rows}, {"index": 1, "scores": rows}])
    assert set(summary["outcome"]) == {"selvforsoergelse", "uddannelse", COMBINED}
    assert (summary["replicates"] == 2).all()


def test_a_small_outcome_study_runs_and_resumes(tmp_path):
    from munirank.cli import run

    out = tmp_path / "study"
    args = ["study", "--preset", "tiny-outcomes", "--replicates", "1", "--out", str(out),
            "--draws", "40", "--tune", "40", "--chains", "2"]
    assert run(args) == 0
    record = json.loads((out / "replicates" / "rep_0000.json").read_text())
    assert {r["outcome"] for r in record["scores"]} == {"job", "education", COMBINED}
    summary = pd.read_csv(out / "study_summary.csv")
    assert {"spearman_rank", "top_k_found", "coverage_effect"} <= set(summary["score"])
    assert run(args) == 0  # resumed: the replicate is read, not run again
    assert json.loads((out / "replicates" / "rep_0000.json").read_text()) == record
