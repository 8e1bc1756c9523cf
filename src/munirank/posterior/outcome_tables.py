"""Tables of a competing-outcomes fit (``[data] outcome``), from draw-by-draw quantities.

- ``municipalities.csv``: the combined outcome (the first of any), ranked as in the
  single-outcome fit; its effect in months is the sum of the outcomes' effects
  (:mod:`munirank.posterior.outcomes`). Columns of the single-outcome table that describe one
  hazard (log_hr, hazard_ratio, time_ratio, shrinkage) are per outcome, in outcomes.csv.
- ``outcomes.csv``: one row per municipality and outcome: events of that outcome (small
  counts blanked), effect in months on the time free of the outcome, the share reaching it
  by the horizon (observed with m's effects, expected with average ones), log hazard ratio,
  ranks (1 = fastest to that outcome), P(top k), P(bottom k), shrinkage.
- ``outcome_correlations.csv``: the correlation of the municipality effects between each pair
  of outcomes (LKJ prior) and each outcome's SD of effects.
- ``covariates.csv``: as in the single-outcome fit, with an ``outcome`` column.

Intervals are equal-tailed at ``ci_prob`` (in each table's ``attrs``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from munirank.input.spec import Spec
from munirank.output.disclosure import blank_small_parts
from munirank.posterior import ranks as rk
from munirank.posterior.outcomes import outcome_effects, outcome_rank_draws
from munirank.posterior.tables import covariate_table, municipality_table


def derived_outcome_draws(posterior: xr.Dataset, episodes: xr.Dataset,
                          spec: Spec) -> xr.Dataset:
    """Effects (combined and per outcome) and their rank draws."""
    eff = outcome_effects(posterior, episodes)
    eff["rank"] = rk.rank_draws(eff["effect_months"])
    eff["rank_outcome"] = outcome_rank_draws(eff["effect_months_outcome"])
    if spec.ranking.subset:
        eff["rank_subset"] = rk.rank_draws(eff["effect_months"],
                                           subset=spec.ranking.subset).rename(
            municipality="subset_municipality")
    return eff


def combined_table(derived: xr.Dataset, episodes: xr.Dataset, spec: Spec, *,
                   converged: bool) -> pd.DataFrame:
    """municipalities.csv of an outcomes fit: the combined outcome, sorted by mean rank.

    :func:`munirank.posterior.tables.municipality_table` without the one-hazard columns, and
    each municipality's ``effect_corr[a~b]`` before ``converged``.
    """
    table = municipality_table(None, derived, episodes, spec, converged=converged)
    at = table.columns.get_loc("converged")
    for i, (pair, corr) in enumerate(effect_correlations(derived["effect_months_outcome"])
                                     .items()):
        table.insert(at + i, f"effect_corr[{pair}]",
                     corr.sel(municipality=table["municipality"].to_numpy()).to_numpy())
    return table


def effect_correlations(effect: xr.DataArray) -> dict[str, xr.DataArray]:
    """Per municipality, the posterior correlation of its effects on each pair of outcomes.

    Over the draws: whether a municipality's draws that are fast to one outcome are also fast
    (positive) or slow (negative) to the other; ``rho`` (outcome_correlations.csv) is the
    correlation across municipalities.
    """
    labels = effect["outcome"].to_numpy().tolist()
    flat = effect.stack(sample=rk.SAMPLE_DIMS)
    out = {}
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            out[f"{a}~{b}"] = xr.corr(flat.sel(outcome=a), flat.sel(outcome=b), dim="sample")
    return out


def outcome_event_counts(episodes: xr.Dataset, *, min_cell: int) -> pd.DataFrame:
    """Events per municipality and outcome, small ones blanked (long: municipality, outcome).

    A count is blank below ``min_cell``, or when fewer than ``min_cell`` of the municipality's
    spells did not reach that outcome; where the municipality's event total is shown and one
    count alone is blank, the smallest other is blanked too (it could be derived); where the
    total is blank, all are.
    """
    counts = episodes["n_events_outcome"].to_numpy()
    n_spells, n_events = episodes["n_spells"].to_numpy(), episodes["n_events"].to_numpy()
    labels = episodes["outcome"].to_numpy().tolist()
    rows = []
    for m, name in enumerate(episodes["municipality"].to_numpy().tolist()):
        total_hidden = (n_events[m] < min_cell or n_spells[m] - n_events[m] < min_cell
                        or n_spells[m] < min_cell)
        parts = {lab: int(counts[m, j]) for j, lab in enumerate(labels)}
        shown = blank_small_parts({lab: (c if n_spells[m] - c >= min_cell else -1)
                                   for lab, c in parts.items()}, min_cell=min_cell)
        for lab in labels:
            value = None if total_hidden else shown[lab]
            rows.append({"municipality": name, "outcome": lab, "n_events_outcome": value})
    out = pd.DataFrame(rows)
    out["n_events_outcome"] = out["n_events_outcome"].astype("Int64")
    return out


def outcome_table(posterior: xr.Dataset, derived: xr.Dataset, episodes: xr.Dataset,
                  spec: Spec, *, converged: bool) -> pd.DataFrame:
    """outcomes.csv: per municipality and outcome (module docstring), by outcome and rank."""
    ci, k = spec.sampling.ci_prob, spec.ranking.top_k
    eff = derived["effect_months_outcome"]
    u = posterior["u"]
    parts = [
        rk.summarise_effect(eff, "effect_months", ci_prob=ci),
        derived["observed_months_outcome"].mean(rk.SAMPLE_DIMS).rename("observed_months_mean"),
        derived["expected_months_outcome"].mean(rk.SAMPLE_DIMS).rename("expected_months_mean"),
        derived["cif_observed"].mean(rk.SAMPLE_DIMS).rename("cif_horizon_mean"),
        derived["cif_expected"].mean(rk.SAMPLE_DIMS).rename("cif_horizon_expected_mean"),
        rk.summarise_effect(u, "log_hr", ci_prob=ci),
        np.exp(u).mean(rk.SAMPLE_DIMS).rename("hazard_ratio_mean"),
        (eff < 0).mean(rk.SAMPLE_DIMS).rename("p_faster"),
        rk.summarise_ranks(derived["rank_outcome"], top_k=k, ci_prob=ci),
        (u.var(rk.SAMPLE_DIMS) / (posterior["sigma"] ** 2).mean(rk.SAMPLE_DIMS))
        .clip(0, 1).rename("shrinkage"),
    ]
    table = xr.merge(parts, compat="override").to_dataframe().reset_index()
    counts = outcome_event_counts(episodes, min_cell=spec.disclosure.min_cell)
    table = counts.merge(table, on=["municipality", "outcome"])
    table["converged"] = converged
    order = {lab: i for i, lab in enumerate(episodes["outcome"].to_numpy().tolist())}
    table = table.sort_values(["outcome", "rank_mean", "municipality"], kind="stable",
                              key=lambda c: c.map(order) if c.name == "outcome" else c)
    table = table.reset_index(drop=True)
    table.attrs.update(ci_prob=ci, top_k=k, n_draws=derived.attrs.get("n_draws_used"))
    return table


def correlation_table(posterior: xr.Dataset, *, ci_prob: float = 0.9) -> pd.DataFrame:
    """outcome_correlations.csv: rho per pair of outcomes and sigma per outcome."""
    rho = rk.summarise_effect(posterior["rho"], "value", ci_prob=ci_prob).to_dataframe()
    rho["p_positive"] = (posterior["rho"] > 0).mean(rk.SAMPLE_DIMS).to_numpy()
    rho = rho.reset_index().rename(columns={"outcome_pair": "term"})
    rho.insert(0, "parameter", "rho")
    sigma = rk.summarise_effect(posterior["sigma"], "value", ci_prob=ci_prob).to_dataframe()
    sigma = sigma.reset_index().rename(columns={"outcome": "term"})
    sigma.insert(0, "parameter", "sigma")
    out = pd.concat([rho, sigma], ignore_index=True)
    out.attrs["ci_prob"] = ci_prob
    return out


def covariate_table_outcomes(posterior: xr.Dataset, episodes: xr.Dataset, *,
                             ci_prob: float = 0.9) -> pd.DataFrame:
    """covariates.csv of an outcomes fit: the single-outcome table per outcome."""
    parts = []
    for label in posterior["outcome"].to_numpy().tolist():
        part = covariate_table(posterior.sel(outcome=label, drop=True), episodes,
                               ci_prob=ci_prob)
        part.insert(0, "outcome", label)
        parts.append(part)
    out = pd.concat(parts, ignore_index=True)
    out.attrs["ci_prob"] = ci_prob
    return out


def outcome_statements_text(derived: xr.Dataset, spec: Spec) -> str:
    """The ranking statements of each outcome (rank 1 = fastest to it), for statements.txt.

    The same sentences as for the combined outcome (:mod:`munirank.posterior.statements`),
    from each outcome's rank draws, under one heading per outcome.
    """
    from munirank.posterior.statements import statements_for

    lines = []
    for label in derived["outcome"].to_numpy().tolist():
        ranks = derived["rank_outcome"].sel(outcome=label, drop=True).rename("rank")
        for r in statements_for(ranks, top_k=spec.ranking.top_k, ci_prob=spec.sampling.ci_prob,
                                subset=spec.ranking.subset):
            head = "among all" if r.scope == "all" else "within the named subset of"
            lines += [f"Outcome {label!r}, {head} {r.n_ranked} municipalities (rank 1 = fastest "
                      f"to {label}; probabilities are posterior probabilities):",
                      *r.sentences, ""]
    return "\n".join(lines)
