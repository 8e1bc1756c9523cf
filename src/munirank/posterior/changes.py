r"""Changes between measurement periods: rank changes, repeats in the top ten, the spread.

All draw by draw, for consecutive periods a -> b and the municipalities present in both
(changes.csv), with :math:`\theta_{m,p}` the effect in months and :math:`r_{m,p}` the rank
(1 = fastest) of municipality m in period p in one posterior draw:

- change :math:`\theta_{m,b} - \theta_{m,a}` (negative = faster = improved);
  ``p_improved`` = P(change < 0);
- rank change :math:`r_{m,a} - r_{m,b}` (positive = rose); ``p_rank_rose10`` = P(rose by
  10 or more places);
- ``p_top{k}_both`` = P(:math:`r_{m,a} \le k` and :math:`r_{m,b} \le k`), and
  ``p_bottom{k}_both`` for the bottom k of each period's list.

For the whole list (periods.json, statements.txt), over the *ranked* municipalities (the
``[ranking] subset`` when given, as the published lists rank a named set; else all):

- overlap :math:`O = |T_a \cap T_b|` of the true top-k lists :math:`T_p` (posterior, draw by
  draw), and the same for the bottom k;
- the overlap of *point-estimate lists*: the top k by the estimates a method without pooling
  reports, :math:`\hat y_{m,p} = E[\theta_{m,p}] / (1 - B_{m,p})`, with :math:`B` the
  shrinkage factor (normal-normal: the posterior mean is :math:`(1 - B)\hat y`; B capped at
  0.99). This is the number a report quotes ("six of the ten were also among the ten best");
- references for it: per posterior draw s, point estimates are simulated as
  :math:`\theta^{(s)}_{m,p} + s_{m,p}\varepsilon`, :math:`s_{m,p} = \mathrm{sd}(\theta_{m,p}) /
  \sqrt{1 - B_{m,p}}` (the unpooled estimate's standard error), and their top-k lists
  compared. *No change*: :math:`\theta_{m,b} := \theta_{m,a}` (the same true effects in both
  periods, each period's own estimation noise): the overlap chance alone gives. *As
  fitted*: each period's own draws. If the observed point-estimate overlap lies well inside
  the no-change reference, repeats say nothing about lasting differences beyond it.
  *Independent*: two lists drawn at random from the n municipalities ranked in both share
  hypergeometric(n, k, k) (mean :math:`k^2/n`): what repeats would be if ranks did not
  persist at all;
- the spread per period: the posterior of the true gap :math:`\max_m\theta_m - \min_m
  \theta_m` against the max-minus-min of the point estimates (what the published method
  reports, "16.5 months between the fastest and the slowest") and the distribution of that
  max-minus-min under the posterior (simulated estimates as above).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from munirank.input.spec import Spec
from munirank.model.periods import period_shift
from munirank.posterior import ranks as rk

RISE = 10
"""A rank rise of this many places or more is ``p_rank_rose10``."""
MAX_SHRINKAGE = 0.99


def flat(da: xr.DataArray) -> np.ndarray:
    """(draws, municipality) numpy array of a (chain, draw, municipality) DataArray."""
    arr = da.transpose(*rk.SAMPLE_DIMS, "municipality").to_numpy()
    return arr.reshape(-1, arr.shape[-1])


def summary(values: np.ndarray, ci_prob: float, *, integer: bool = False) -> dict[str, Any]:
    """Mean and equal-tailed interval (integer quantities: covering at least ci_prob)."""
    tail = (1 - ci_prob) / 2
    if integer:
        interval = [float(np.quantile(values, tail, method="lower")),
                    float(np.quantile(values, 1 - tail, method="higher"))]
    else:
        interval = [float(v) for v in np.quantile(values, [tail, 1 - tail])]
    return {"mean": round(float(np.mean(values)), 4),
            "interval": [round(v, 4) for v in interval], "ci_prob": ci_prob}


def pairs(periods: list[str]) -> list[tuple[str, str]]:
    """Consecutive periods: (first, second), (second, third), ..."""
    return list(zip(periods[:-1], periods[1:], strict=True))


def change_table(results: dict[str, tuple[xr.Dataset, pd.DataFrame, Spec]],
                 spec: Spec) -> pd.DataFrame:
    """changes.csv: one row per consecutive pair of periods and municipality in both."""
    rows = [_pair_changes(results, a, b, spec) for a, b in pairs(list(results))]
    out = pd.concat(rows, ignore_index=True)
    out.attrs.update(ci_prob=spec.sampling.ci_prob, top_k=spec.ranking.top_k)
    return out


def _pair_changes(results: dict[str, tuple[xr.Dataset, pd.DataFrame, Spec]], a: str, b: str,
                  spec: Spec) -> pd.DataFrame:
    (da, ta, _), (db, tb, _) = results[a], results[b]
    common = sorted(set(da["municipality"].to_numpy()) & set(db["municipality"].to_numpy()))
    ci, k = spec.sampling.ci_prob, spec.ranking.top_k
    ea = da["effect_months"].sel(municipality=common)
    eb = db["effect_months"].sel(municipality=common)
    ra, rb = (da["rank"].sel(municipality=common), db["rank"].sel(municipality=common))
    na, nb = da.sizes["municipality"], db.sizes["municipality"]
    change, rose = eb - ea, ra - rb
    tail = (1 - ci) / 2
    def quantile(q: float, method: Literal["lower", "higher"]) -> xr.DataArray:  # >= ci
        return rose.quantile(q, dim=rk.SAMPLE_DIMS, method=method).drop_vars("quantile")

    parts: list[xr.Dataset | xr.DataArray] = [
        rk.summarise_effect(change, "change_months", ci_prob=ci).drop_vars("change_months_median"),
        (change < 0).mean(rk.SAMPLE_DIMS).rename("p_improved"),
        ra.mean(rk.SAMPLE_DIMS).rename("rank_from_mean"),
        rb.mean(rk.SAMPLE_DIMS).rename("rank_to_mean"),
        rose.mean(rk.SAMPLE_DIMS).rename("rank_change_mean"),
        quantile(tail, "lower").rename("rank_change_lo"),
        quantile(1 - tail, "higher").rename("rank_change_hi"),
        (rose >= RISE).mean(rk.SAMPLE_DIMS).rename(f"p_rank_rose{RISE}"),
        ((ra <= k) & (rb <= k)).mean(rk.SAMPLE_DIMS).rename(f"p_top{k}_both"),
        ((ra > na - k) & (rb > nb - k)).mean(rk.SAMPLE_DIMS).rename(f"p_bottom{k}_both"),
    ]
    table = xr.merge(parts, compat="override").to_dataframe().reset_index()
    counts = _counts(ta, tb, common)
    table = pd.concat([counts.reset_index(drop=True), table.drop(columns="municipality")],
                      axis=1)
    table.insert(1, "period_from", a)
    table.insert(2, "period_to", b)
    return table.sort_values(["change_months_mean", "municipality"],
                             kind="stable").reset_index(drop=True)


def _counts(ta: pd.DataFrame, tb: pd.DataFrame, common: list[str]) -> pd.DataFrame:
    """Episodes in each period (already blanked where small) and the small-cell flag."""
    a, b = ta.set_index("municipality").loc[common], tb.set_index("municipality").loc[common]
    return pd.DataFrame({"municipality": common,
                         "n_spells_from": a["n_spells"].to_numpy(),
                         "n_spells_to": b["n_spells"].to_numpy(),
                         "small_cell": (a["small_cell"].to_numpy()
                                        | b["small_cell"].to_numpy())})


def ranked(derived: xr.Dataset, table: pd.DataFrame) -> tuple[xr.DataArray, pd.DataFrame]:
    """The ranked set's rank draws and table rows (the subset when given, else all)."""
    if "rank_subset" in derived:
        ranks = derived["rank_subset"].rename(subset_municipality="municipality")
    else:
        ranks = derived["rank"]
    names = ranks["municipality"].to_numpy()
    return ranks, table.set_index("municipality").loc[names]


def _top(values: np.ndarray, k: int, *, bottom: bool = False) -> np.ndarray:
    """Boolean (draws, municipality): in the k smallest (or largest) of each row."""
    order = np.argsort(-values if bottom else values, axis=-1, kind="stable")[..., :k]
    out = np.zeros(values.shape, bool)
    np.put_along_axis(out, order, True, axis=-1)
    return out


def _period_parts(results: dict[str, tuple[xr.Dataset, pd.DataFrame, Spec]],
                  period: str) -> dict[str, Any]:
    """The ranked set of one period: names, effect and rank draws, estimates and their SEs."""
    derived, table, _ = results[period]
    ranks, rows = ranked(derived, table)
    names = ranks["municipality"].to_numpy()
    theta = flat(derived["effect_months"].sel(municipality=names))
    shrink = np.minimum(rows["shrinkage"].to_numpy(float), MAX_SHRINKAGE)
    return {"names": names, "theta": theta, "rank": flat(ranks),
            "estimate": rows["effect_months_mean"].to_numpy(float) / (1 - shrink),
            "se": theta.std(axis=0) / np.sqrt(1 - shrink),
            "mean_rank": rows["rank_mean"].to_numpy(float)}


def _distribution(overlap: np.ndarray, k: int) -> list[float]:
    return [round(float(v), 4) for v in np.bincount(overlap, minlength=k + 1) / len(overlap)]


def _overlap(pa: dict[str, Any], pb: dict[str, Any], ia: np.ndarray, ib: np.ndarray, k: int,
             bottom: bool, ci: float, rng: np.random.Generator) -> dict[str, Any]:
    def lists_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return (_top(a, k, bottom=bottom)[:, ia] & _top(b, k, bottom=bottom)[:, ib]).sum(1)

    truth = lists_overlap(pa["theta"], pb["theta"])
    point = int(lists_overlap(pa["estimate"][None], pb["estimate"][None])[0])
    own = int(lists_overlap(pa["mean_rank"][None], pb["mean_rank"][None])[0])
    noise_a = pa["se"] * rng.standard_normal(pa["theta"].shape)
    noise_b = pb["se"] * rng.standard_normal(pb["theta"].shape)
    unchanged = pb["theta"].copy()
    unchanged[:, ib] = pa["theta"][:, ia]
    no_change = lists_overlap(pa["theta"] + noise_a, unchanged + noise_b)
    fitted = lists_overlap(pa["theta"] + noise_a, pb["theta"] + noise_b)
    return {
        "posterior": summary(truth, ci, integer=True) | {
            "distribution": _distribution(truth, k),
            "p_at_least_point_estimates": round(float((truth >= point).mean()), 4)},
        "point_estimates": point,
        "posterior_mean_lists": own,
        "no_change": summary(no_change, ci, integer=True) | {
            "distribution": _distribution(no_change, k),
            "p_at_least_point_estimates": round(float((no_change >= point).mean()), 4),
            "p_at_most_point_estimates": round(float((no_change <= point).mean()), 4)},
        "as_fitted": summary(fitted, ci, integer=True) | {
            "distribution": _distribution(fitted, k)},
        "independent": _independent(len(ia), k, ci),
    }


def _independent(n: int, k: int, ci: float) -> dict[str, Any]:
    """The overlap of two top-k lists drawn at random from n: hypergeometric(n, k, k)."""
    dist = stats.hypergeom(n, k, k)
    tail = (1 - ci) / 2
    return {"mean": round(float(dist.mean()), 4),
            "interval": [float(dist.ppf(tail)), float(dist.ppf(1 - tail))], "ci_prob": ci}


def overlap_summary(results: dict[str, tuple[xr.Dataset, pd.DataFrame, Spec]], a: str,
                    b: str, spec: Spec, rng: np.random.Generator) -> dict[str, Any]:
    """The top-k and bottom-k overlaps of periods a and b (module docstring)."""
    pa, pb = _period_parts(results, a), _period_parts(results, b)
    common = sorted(set(pa["names"]) & set(pb["names"]))
    ia = pd.Index(pa["names"]).get_indexer(common)
    ib = pd.Index(pb["names"]).get_indexer(common)
    k = min(spec.ranking.top_k, len(pa["names"]), len(pb["names"]))
    ci = spec.sampling.ci_prob
    return {"from": a, "to": b, "top_k": k, "n_ranked_from": len(pa["names"]),
            "n_ranked_to": len(pb["names"]), "n_common": len(common),
            **{tail: _overlap(pa, pb, ia, ib, k, tail == "bottom", ci, rng)
               for tail in ("top", "bottom")}}


def spread_summary(results: dict[str, tuple[xr.Dataset, pd.DataFrame, Spec]], period: str,
                   spec: Spec, rng: np.random.Generator) -> dict[str, Any]:
    """The fastest-minus-slowest gap of one period, true and as point estimates show it."""
    parts = _period_parts(results, period)
    theta, ci = parts["theta"], spec.sampling.ci_prob
    gap = theta.max(axis=1) - theta.min(axis=1)
    point = float(parts["estimate"].max() - parts["estimate"].min())
    simulated = theta + parts["se"] * rng.standard_normal(theta.shape)
    means = theta.mean(axis=0)
    return {"period": period, "n_ranked": len(parts["names"]),
            "true_gap_months": summary(gap, ci),
            "point_estimate_gap_months": round(point, 4),
            "posterior_mean_gap_months": round(float(means.max() - means.min()), 4),
            "estimate_gap_months_under_posterior": summary(
                simulated.max(axis=1) - simulated.min(axis=1), ci),
            "p_true_gap_at_least_point_estimate_gap": round(float((gap >= point).mean()), 4)}


def periods_summary(posterior: xr.Dataset, results: dict[str, tuple[xr.Dataset, pd.DataFrame,
                                                                    Spec]],
                    spec: Spec) -> dict[str, Any]:
    """periods.json: the model's period terms, the overlaps of each pair, the spreads."""
    ci = spec.sampling.ci_prob
    rng = np.random.default_rng(spec.sampling.seed)

    def draws(name: str) -> np.ndarray:
        return posterior[name].to_numpy().ravel()

    shift = period_shift(posterior, list(results))
    return {
        "ci_prob": ci, "top_k": spec.ranking.top_k, "structure": spec.model.periods,
        "periods": list(results),
        "ranked": "subset" if spec.ranking.subset else "all",
        "rho": summary(draws("rho"), ci),
        "sigma": summary(draws("sigma"), ci),
        **({"sigma_period": summary(draws("sigma_period"), ci)}
           if "sigma_period" in posterior else {}),
        "period_shift_log_hr": {str(p): summary(shift.sel(period=p).to_numpy().ravel(), ci)
                                for p in shift["period"].to_numpy()},
        "overlap": [overlap_summary(results, a, b, spec, rng)
                    for a, b in pairs(list(results))],
        "spread": [spread_summary(results, p, spec, rng) for p in results],
    }
