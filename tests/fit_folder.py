"""A synthetic fit output folder (fake draws, no sampling) for the report and plot tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from munirank.checking import predictive
from munirank.input.spec import Spec, spec_to_dict
from munirank.output import files
from munirank.posterior import tables


def fake_comparison(table: pd.DataFrame, *, top_k: int, seed: int = 0) -> pd.DataFrame:
    """comparison.csv with the documented columns, frequentist numbers made up."""
    rng = np.random.default_rng(seed)
    n = pd.to_numeric(table["n_spells"], errors="coerce")
    se = 12.0 / np.sqrt(n.fillna(3).to_numpy(float))
    freq = table["effect_months_mean"].to_numpy() * 1.5 + rng.normal(0, 1, len(table))
    in_cutoff = (n > 80).fillna(False).to_numpy(bool)
    freq_rank = pd.Series(freq).where(in_cutoff).rank(method="min")
    return pd.DataFrame({
        "municipality": table["municipality"], "n_spells": table["n_spells"],
        "n_events": table["n_events"], "small_cell": table["small_cell"],
        "freq_log_hr": -freq / 10, "freq_log_hr_se": se / 10, "freq_effect_months": freq,
        "freq_se": se, "freq_p": rng.uniform(0, 1, len(table)),
        "freq_stars": rng.choice(["", "*", "**"], len(table)), "freq_rank": freq_rank,
        "in_cutoff": in_cutoff, "bayes_effect_months_mean": table["effect_months_mean"],
        "bayes_effect_months_lo": table["effect_months_lo"],
        "bayes_effect_months_hi": table["effect_months_hi"],
        "bayes_rank_mean": table["rank_mean"], "bayes_rank_lo": table["rank_lo"],
        "bayes_rank_hi": table["rank_hi"], f"p_top{top_k}": table[f"p_top{top_k}"],
        f"p_bottom{top_k}": table[f"p_bottom{top_k}"], "p_faster": table["p_faster"],
        "flag_starred_fast_not_credible": rng.uniform(size=len(table)) < 0.2,
        "flag_top10_not_credible": False, "flag_excluded_but_extreme": False,
    })


def write_fit_folder(path: Path, posterior: xr.Dataset, episodes: xr.Dataset, spec: Spec, *,
                     converged: bool = True, comparison: bool = False) -> Path:
    """Write what ``munirank fit`` writes (and ``compare`` adds), from fake draws."""
    path.mkdir(parents=True, exist_ok=True)
    derived = tables.derived_draws(posterior, episodes, spec)
    table = tables.municipality_table(posterior, derived, episodes, spec, converged=converged)
    files.write_csv(table, path / "municipalities.csv")
    files.write_csv(tables.covariate_table(posterior, episodes), path / "covariates.csv")
    files.write_csv(predictive.survival_table(posterior, episodes, max_draws=40),
                      path / "survival.csv")
    diag = {"rhat_max": 1.001 if converged else 1.2, "ess_bulk_min": 900.0,
            "ess_tail_min": 800.0, "divergences": 0, "converged": converged,
            "criteria": "rhat <= 1.01, ess_bulk >= 400, no divergences", "sampler": "nutpie",
            "method": "nuts", "chains": 2, "draws": 50, "tune": 50, "wall_seconds": 1.0}
    files.write_json(diag, path / "diagnostics.json")
    run = {"spec": spec_to_dict(spec), "versions": files.versions(), "seed": 1,
           "n_episodes": int(episodes.sizes["episode"]), "data_hash": "0" * 64,
           "n_municipalities": int(episodes.sizes["municipality"]), "spec_hash": "1" * 64}
    files.write_json(run, path / "run.json")
    tree = xr.DataTree.from_dict({
        "posterior": posterior[["alpha", "sigma", "u"]],
        "derived": derived[["observed_months", "expected_months", "effect_months", "rank"]]})
    tree.to_netcdf(path / "posterior.nc", engine="netcdf4")
    if comparison:
        comp = fake_comparison(table, top_k=spec.ranking.top_k)
        files.write_csv(comp, path / "comparison.csv")
        (path / "comparison_summary.txt").write_text("3 starred municipalities are not "
                                                     "credibly faster <check escaping>\n")
    return path
