"""The files of a fit with measurement periods, and their plain words (``[data] period``).

Per period, everything a one-period fit writes about its ranking: credible_sets.csv,
tiers.csv and rank_probabilities.csv with a ``period`` column, and one block per period in
statements.txt (:mod:`munirank.posterior.statements`, unchanged). Across periods:
changes.csv, periods.json (:mod:`munirank.posterior.changes`) and the section
"Changes between periods" of statements.txt, worded as the rest: rank 1 = fastest, every
probability a posterior probability, "with probability at least p" at the fit's ``ci_prob``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from munirank.input.spec import Spec
from munirank.output import files
from munirank.posterior import statements as st
from munirank.posterior.changes import RISE

HEAD = "Changes between periods (posterior probabilities; the table is in changes.csv):"


def _interval(s: dict[str, Any], digits: int = 1) -> str:
    lo, hi = s["interval"]
    level = f"{s['ci_prob']:.0%}"
    bounds = 0 if float(lo).is_integer() and float(hi).is_integer() else digits  # counts
    return f"{s['mean']:.{digits}f} ({level} interval {lo:.{bounds}f} to {hi:.{bounds}f})"


def _named(rows: pd.DataFrame, column: str, p: float, limit: int = 10) -> str:
    chosen = rows[rows[column] >= p].sort_values(column, ascending=False)
    names = chosen["municipality"].tolist()
    if not names:
        return "none"
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(f"{m} ({v:.2f})" for m, v in zip(names[:limit], chosen[column][:limit],
                                                     strict=True)) + more


def overlap_lines(o: dict[str, Any], tail: str) -> list[str]:
    """The sentences on how many of one list's k repeat in the next (module docstring)."""
    k, x = o["top_k"], o[tail]
    word = "fastest" if tail == "top" else "slowest"
    point, ref = x["point_estimates"], x["no_change"]
    low = ref["p_at_most_point_estimates"]
    verdict = (f"fewer than unchanged effects give ({point} or fewer in {low:.0%} of draws): "
               "the lists changed more than estimation noise explains" if low < 0.05 else
               f"as many as unchanged effects give ({point} or fewer in {low:.0%} of draws): "
               "the repeats, and the places lost, are within estimation noise")
    return [
        f"Of the {k} {word} of {o['n_ranked_from']} in {o['from']} by point estimates "
        f"(without pooling, as published lists rank), {point} are among the {k} {word} of "
        f"{o['n_ranked_to']} in {o['to']} again.",
        f"If no municipality had truly changed, such lists would share {_interval(ref)}: "
        f"{point} is {verdict}. Lists drawn at random would share "
        f"{_interval(x['independent'])}.",
        f"The true {k} {word} of the two periods share {_interval(x['posterior'])} "
        f"municipalities (munirank's own lists by mean rank share {x['posterior_mean_lists']}).",
    ]


def spread_lines(s: dict[str, Any]) -> list[str]:
    """The fastest-minus-slowest gap of one period, true and as point estimates show it."""
    return [
        f"{s['period']}: point estimates put {s['point_estimate_gap_months']:.1f} months "
        f"between the fastest and the slowest of {s['n_ranked']}; the true gap is "
        f"{_interval(s['true_gap_months'])} months (P(true gap at least "
        f"{s['point_estimate_gap_months']:.1f}) = "
        f"{s['p_true_gap_at_least_point_estimate_gap']:.2f}); estimates without pooling "
        f"would show {_interval(s['estimate_gap_months_under_posterior'])} months even if "
        "this posterior were the truth.",
    ]


def change_lines(summary: dict[str, Any], changes: pd.DataFrame) -> list[str]:
    """The section "Changes between periods" of statements.txt."""
    ci, k = summary["ci_prob"], summary["top_k"]
    lines = [HEAD,
             f"Periods: {', '.join(summary['periods'])}; a municipality's effects are "
             f"correlated {_interval(summary['rho'], 2)} between periods "
             f"({summary['structure']})."]
    for o in summary["overlap"]:
        rows = changes[(changes["period_from"] == o["from"]) & (changes["period_to"] == o["to"])]
        ranked = ("the [ranking] subset" if summary["ranked"] == "subset"
                  else "all municipalities")
        lines += ["", f"From {o['from']} to {o['to']}: {len(rows)} municipalities are in both "
                  f"periods. The top and bottom {k} lists are of {ranked} ({o['n_common']} in "
                  "both); the probabilities named after them rank all municipalities.",
                  *overlap_lines(o, "top"), *overlap_lines(o, "bottom"),
                  f"Among the {k} fastest in both with probability at least {ci:.2f}: "
                  f"{_named(rows, f'p_top{k}_both', ci)}.",
                  f"Among the {k} slowest in both with probability at least {ci:.2f}: "
                  f"{_named(rows, f'p_bottom{k}_both', ci)}.",
                  f"Improved (faster) with probability at least {ci:.2f}: "
                  f"{_named(rows, 'p_improved', ci)}.",
                  f"Rose {RISE} places or more with probability at least {ci:.2f}: "
                  f"{_named(rows, f'p_rank_rose{RISE}', ci)}."]
    lines += ["", "The spread (fastest minus slowest, effects in months):",
              *(line for s in summary["spread"] for line in spread_lines(s))]
    return lines


def write_period_statements(results: dict[str, tuple[xr.Dataset, pd.DataFrame, Spec]],
                            summary: dict[str, Any], changes: pd.DataFrame,
                            folder: str | Path) -> None:
    """credible_sets.csv, tiers.csv, rank_probabilities.csv and statements.txt, per period."""
    folder = Path(folder)
    blocks: list[str] = []
    sets, tiers, probs = [], [], []
    for period, (derived, table, spec) in results.items():
        found = st.statements_for(derived["rank"], top_k=spec.ranking.top_k,
                                  ci_prob=spec.sampling.ci_prob, subset=spec.ranking.subset,
                                  table=table)
        sets.append(st.sets_table(found).assign(period=period))
        tiers.append(pd.concat([r.tiers.assign(scope=r.scope) for r in found]).assign(
            period=period))
        probs.append(found[0].ranks.assign(period=period))
        blocks += [f"Period {period}:", st.statements_text(found)]
    files.write_csv(_period_first(sets), folder / "credible_sets.csv")
    files.write_csv(_period_first(tiers), folder / "tiers.csv")
    files.write_csv(_period_first(probs), folder / "rank_probabilities.csv")
    text = "\n".join([*blocks, *change_lines(summary, changes), ""])
    (folder / "statements.txt").write_text(text, encoding="utf-8")


def _period_first(parts: Sequence[pd.DataFrame]) -> pd.DataFrame:
    out = pd.concat(parts, ignore_index=True)
    return out[["period", *[c for c in out.columns if c != "period"]]]
