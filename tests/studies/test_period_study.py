"""Scoring the period statements against truth (fast), and a small study (slow)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from munirank.studies.periods import period_study, pooled, score_replicate, true_overlaps


def _replicate(seed: int):
    rng = np.random.default_rng(seed)
    n = 40
    p_improved = rng.random(n)
    p_top = rng.random(n) * 0.3
    keys = {"municipality": [f"K{i}" for i in range(n)], "period_from": "1", "period_to": "2"}
    change = rng.normal(0, 2, n)
    changes = pd.DataFrame({**keys, "p_improved": p_improved, "p_top3_both": p_top,
                            "p_bottom3_both": p_top[::-1], "change_months_lo": change - 1,
                            "change_months_hi": change + 1})
    truth = pd.DataFrame({**keys, "true_improved": rng.random(n) < p_improved,
                          "true_top3_both": rng.random(n) < p_top,
                          "true_bottom3_both": rng.random(n) < p_top[::-1],
                          "true_change_months": change + rng.normal(0, 0.5, n)})
    interval = {"interval": [1, 3], "mean": 2.0}
    summary = {"overlap": [{t: {"posterior": interval, "point_estimates": 2,
                                "no_change": {"mean": 1.5}} for t in ("top", "bottom")}]}
    return score_replicate(changes, truth, summary, {"top": 2, "bottom": 1}, 3)


def test_true_overlaps_of_the_ranked_set():
    truth = pd.DataFrame({"municipality": list("ABCDE") * 2, "period": ["1"] * 5 + ["2"] * 5,
                          "true_effect_months": [1, 2, 3, 4, 5, 2, 1, 5, 3, 4]})
    assert true_overlaps(truth, list("ABCDE"), 2, ("1", "2")) == {"top": 2, "bottom": 1}
    assert true_overlaps(truth, list("ACDE"), 2, ("1", "2")) == {"top": 1, "bottom": 1}


def test_scores_pair_each_probability_with_its_truth_and_pool():
    scored = [_replicate(s) for s in range(20)]
    first = scored[0]
    assert len(first["predicted"]["p_improved"]) == 40
    assert 0.8 <= first["change_coverage"] <= 1.0  # +-1 around truth + N(0, 0.5): 0.95
    out = pooled([s | {"converged": True} for s in scored])
    assert out["replicates"] == 20 and out["converged"] == 20
    improved = out["tables"]["p_improved"]
    assert improved["n"].sum() == 800
    # the synthetic probabilities are calibrated by construction
    full = improved[improved["n"] >= 50]
    assert (full["difference"].abs() < 0.15).all()
    assert out["p_improved"]["brier"] < 0.25


@pytest.mark.slow
def test_a_small_period_study_writes_its_scores(tmp_path):
    record = period_study(2, tmp_path / "study", scale=0.3, draws=300, tune=300, chains=2)
    assert record["replicates"] == 2
    assert set(record) >= {"p_top10_both", "p_improved", "change_coverage"}
    assert 0.6 <= record["change_coverage"] <= 1.0
    assert record["p_improved"]["brier"] < 0.25
    saved = json.loads((tmp_path / "study" / "period_study.json").read_text())
    assert len(saved["per_replicate"]) == 2
    table = pd.read_csv(tmp_path / "study" / "period_reliability.csv")
    assert set(table["probability"]) == {"p_top10_both", "p_bottom10_both", "p_improved"}
    assert not any(p.name.startswith("tmp") for p in (tmp_path / "study").iterdir())


def test_study_command_points_a_period_preset_to_its_own_study(tmp_path, capsys):
    from munirank.cli import run

    assert run(["study", "--preset", "dk-two-periods", "--replicates", "1", "--out",
                str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err
    assert "munirank.studies.periods" in err and "--preset" in err
    assert not (tmp_path / "s").exists()
