"""Tables from the posterior: per municipality and per covariate (pure functions).

Every number is a summary of draw-by-draw quantities; intervals are equal-tailed at
``ci_prob``, which is stored in the DataFrame's ``attrs``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from munirank.input.spec import Spec
from munirank.output.disclosure import blank_small_counts
from munirank.posterior import ranks as rk
from munirank.posterior import sets
from munirank.posterior.effects import duration_effects


def derived_draws(posterior: xr.Dataset, episodes: xr.Dataset, spec: Spec) -> xr.Dataset:
    """Effect draws (months, hazard ratios) and rank draws per municipality."""
    eff = duration_effects(posterior, episodes)
    eff["rank"] = rk.rank_draws(eff["effect_months"])
    if spec.ranking.subset:
        eff["rank_subset"] = rk.rank_draws(eff["effect_months"],
                                           subset=spec.ranking.subset).rename(
            municipality="subset_municipality")
    return eff


def shrinkage(posterior: xr.Dataset) -> xr.DataArray:
    """Normal-normal shrinkage factor Var(u_m | data) / E[sigma^2 | data].

    0 = the municipality's own data determine its effect (no pooling), 1 = its effect is the
    pooled prediction (complete pooling). In a normal-normal model this equals
    se_m^2 / (se_m^2 + sigma^2), the weight on the pooled mean.
    """
    var_u = posterior["u"].var(rk.SAMPLE_DIMS)
    return (var_u / (posterior["sigma"] ** 2).mean(rk.SAMPLE_DIMS)).clip(0, 1)


def municipality_table(posterior: xr.Dataset | None, derived: xr.Dataset,
                       episodes: xr.Dataset, spec: Spec, *, converged: bool) -> pd.DataFrame:
    """The municipalities.csv table, sorted by mean rank, small counts blanked.

    A fit with one hazard (``log_hr`` in ``derived``) also gets its hazard ratios, time ratio
    and shrinkage (from ``posterior``); the combined outcome of competing outcomes has none
    (they are per outcome, :mod:`munirank.posterior.outcome_tables`) and needs no posterior.
    """
    ci, k = spec.sampling.ci_prob, spec.ranking.top_k
    eff = derived["effect_months"]
    one_hazard = "log_hr" in derived
    parts = [
        rk.summarise_effect(eff, "effect_months", ci_prob=ci),
        derived["observed_months"].mean(rk.SAMPLE_DIMS).rename("observed_months_mean"),
        derived["expected_months"].mean(rk.SAMPLE_DIMS).rename("expected_months_mean"),
        *([rk.summarise_effect(derived["log_hr"], "log_hr", ci_prob=ci),
           rk.summarise_effect(derived["hazard_ratio"], "hazard_ratio", ci_prob=ci),
           derived["time_ratio"].mean(rk.SAMPLE_DIMS).rename("time_ratio_mean")]
          if one_hazard else []),
        (eff < 0).mean(rk.SAMPLE_DIMS).rename("p_faster"),
        rk.summarise_ranks(derived["rank"], top_k=k, ci_prob=ci),
        sets.triple_goal(eff).rename(effect_gr="effect_months_gr"),
        *([shrinkage(posterior).rename("shrinkage")] if one_hazard else []),
        episodes["n_spells"], episodes["n_events"],
    ]
    table = xr.merge(parts, compat="override").to_dataframe().reset_index()
    table = table.drop(columns=[c for c in ("hazard_ratio_median",) if c in table])
    table = blank_small_counts(table, min_cell=spec.disclosure.min_cell)
    table["converged"] = converged
    first = ["municipality", "n_spells", "n_events", "small_cell"]
    table = table[first + [c for c in table.columns if c not in first]]
    table = table.sort_values(["rank_mean", "municipality"], kind="stable").reset_index(drop=True)
    table.attrs.update(ci_prob=ci, top_k=k)
    return table


def old_municipality_table(posterior: xr.Dataset, derived: xr.Dataset, episodes: xr.Dataset,
                           spec: Spec) -> pd.DataFrame | None:
    """old_municipalities.csv: the old municipalities nested in the new ones (None if none).

    Each old municipality's effect in months over its own episodes with its own effect
    ``u_old`` (``log_hr``), its new municipality, and how far its effect lies from that
    municipality's (``log_hr_vs_new``, u_old - u_new). Not ranked: the ranking is of the new
    municipalities (municipalities.csv). ``shrinkage`` is Var(u_old - u_new | data) /
    E[sigma_old^2 | data] (1 = pooled completely onto the new municipality's effect).
    """
    if "effect_months_old" not in derived:
        return None
    ci = spec.sampling.ci_prob
    old = "old_municipality"
    eff = derived["effect_months_old"]
    parent = posterior["u"].sel(municipality=episodes["old_parent"]).drop_vars("municipality")
    within = posterior["u_old"] - parent
    parts: list[xr.Dataset | xr.DataArray] = [
        episodes["old_parent"].rename("municipality"),
        episodes["n_spells_old"].rename("n_spells"), episodes["n_events_old"].rename("n_events"),
        rk.summarise_effect(eff, "effect_months", ci_prob=ci),
        derived["observed_months_old"].mean(rk.SAMPLE_DIMS).rename("observed_months_mean"),
        derived["expected_months_old"].mean(rk.SAMPLE_DIMS).rename("expected_months_mean"),
        rk.summarise_effect(posterior["u_old"], "log_hr", ci_prob=ci),
        rk.summarise_effect(within, "log_hr_vs_new", ci_prob=ci),
        (eff < 0).mean(rk.SAMPLE_DIMS).rename("p_faster"),
        (within.var(rk.SAMPLE_DIMS) / (posterior["sigma_old"] ** 2).mean(rk.SAMPLE_DIMS))
        .clip(0, 1).rename("shrinkage"),
    ]
    table = xr.merge(parts, compat="override").to_dataframe().reset_index()
    table = blank_small_counts(table, min_cell=spec.disclosure.min_cell)
    first = [old, "municipality", "n_spells", "n_events", "small_cell"]
    table = table[first + [c for c in table.columns if c not in first]]
    table = table.sort_values(["municipality", old], kind="stable").reset_index(drop=True)
    table.attrs.update(ci_prob=ci)
    return table


def subset_table(derived: xr.Dataset, spec: Spec) -> pd.DataFrame | None:
    """Rank summaries within the spec's named subset, with the mean rank among all beside."""
    if "rank_subset" not in derived:
        return None
    ranks = derived["rank_subset"].rename(subset_municipality="municipality")
    out = rk.summarise_ranks(ranks, top_k=spec.ranking.top_k, ci_prob=spec.sampling.ci_prob)
    out["rank_mean_all"] = derived["rank"].mean(rk.SAMPLE_DIMS).sel(municipality=out.municipality)
    return out.to_dataframe().reset_index().sort_values("rank_mean").reset_index(drop=True)


def covariate_table(posterior: xr.Dataset, episodes: xr.Dataset, *,
                    ci_prob: float = 0.9) -> pd.DataFrame:
    """Log hazard ratio and hazard ratio of each covariate, with ``ci_prob`` intervals.

    Numeric covariates are per standard deviation (``sd`` gives it in the data's units);
    categorical levels are against the most frequent level. A hazard ratio above 1 means
    a faster transition.
    """
    rows = []
    for var, dim, kind, scale in (("beta", "covariate", "individual", "x_scale"),
                                  ("gamma", "municipal_covariate", "municipal", "z_scale")):
        draws = posterior[var]
        if draws.sizes[dim] == 0:
            continue
        s = rk.summarise_effect(draws, "log_hr", ci_prob=ci_prob)
        hr = rk.summarise_effect(np.exp(draws), "hazard_ratio", ci_prob=ci_prob)
        df = xr.merge([s, hr]).to_dataframe().reset_index().rename(columns={dim: "covariate"})
        df.insert(1, "kind", kind)
        df.insert(2, "unit", ["level vs reference" if "[" in c else "per SD"
                              for c in df["covariate"]])
        df.insert(3, "sd", episodes[scale].to_numpy())
        df["p_positive"] = (draws > 0).mean(rk.SAMPLE_DIMS).to_numpy()
        rows.append(df)
    out = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["covariate"])
    out.attrs["ci_prob"] = ci_prob
    return out
