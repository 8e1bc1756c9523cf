r"""Statements about the whole ranking that stay honest when all municipalities are compared.

Everything is computed from the posterior rank (or effect) draws, draw by draw. With K
municipalities, S draws and rank r_ms of municipality m in draw s (1 = fastest):

- Expected rank R̄_m = mean_s r_ms; posterior percentile 100 r / (K + 1) (Lin, Louis, Paddock
  and Ridgeway 2006), 0 = fastest; rank distribution P(r_m = r).
- Top-k credible set ("contains"): T_s = {m : r_ms <= k} is the true top k in draw s. The set
  wanted is the smallest C with P(T ⊆ C) >= p. Candidates are the prefixes of the
  municipalities sorted by P(top k): draw s needs the prefix up to its worst-placed top-k
  member, and the answer is the ``p``-quantile of that need (see :func:`credible_set`).
- Top-k "each" set: {m : P(r_m <= k) >= p}, with the joint probability that all are in it.
  Bottom-k sets are the same with the ranks reversed (K + 1 - r).
- Triple-goal (GR) estimates (Shen and Louis 1998): the effects' distribution is estimated by
  the mean posterior EDF Ḡ(t) = (1/K) sum_m P(theta_m <= t | y), the EDF of all draws
  pooled; municipality m gets Ḡ^{-1}((2 R̂_m - 1) / (2K)), where R̂_m are the integer ranks
  of the expected ranks R̄_m. One set of estimates then has a near-optimal histogram and
  ranks, at a small cost in squared error per municipality.
- Tiers: municipalities in mean-rank order, cut into consecutive groups so that, with joint
  probability >= p, every municipality of tier j is faster than every one of tier j + 1 for all
  j. A cut after position c holds in draw s iff the first c municipalities occupy ranks 1..c,
  i.e. max_{i <= c} r_(i)s = c (see :func:`tiers`).
- Pairwise: P(A faster than B) = (1/S) sum_s 1[effect_As < effect_Bs], from the effect draws
  (see :func:`pairwise`).

The sentences, statements.txt and the other files written from these live in
:mod:`munirank.posterior.statements`, which also re-exports every public name of this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from munirank.errors import InputError
from munirank.posterior.ranks import (
    SAMPLE_DIMS,
    pairwise_faster,
    rank_kernel,
    rank_probability_kernel,
)

DIM = "municipality"


@dataclass(frozen=True)
class CredibleSet:
    """A set of municipalities and what it holds with which posterior probability.

    ``kind`` is ``"contains"`` (the set contains all of the true top k with probability
    ``probability``) or ``"each"`` (each member is in the top k with probability at least
    ``ci_prob``; ``probability`` is that all are, jointly). ``tail`` is ``"top"`` (fastest) or
    ``"bottom"`` (slowest). ``proved_minimal`` says whether no smaller set can reach
    ``ci_prob`` (always True for ``"each"``, where size is not minimised).
    """

    tail: str
    kind: str
    k: int
    ci_prob: float
    members: tuple[str, ...]
    probability: float
    proved_minimal: bool


def draw_matrix(ranks: xr.DataArray, *, dim: str = DIM) -> tuple[np.ndarray, list[str]]:
    """Ranks as an (S draws, K municipalities) array, and the municipality names."""
    stacked = ranks.stack(sample=SAMPLE_DIMS).transpose("sample", dim)
    return stacked.to_numpy(), [str(m) for m in stacked[dim].to_numpy()]


def _oriented(ranks: np.ndarray, tail: str) -> np.ndarray:
    if tail not in ("top", "bottom"):
        raise ValueError(f"tail must be 'top' or 'bottom', not {tail!r}")
    return ranks if tail == "top" else ranks.shape[1] + 1 - ranks


def tail_probability(ranks: xr.DataArray, *, k: int, tail: str = "top") -> pd.Series:
    """P(among the k fastest) (``tail="top"``) or P(among the k slowest), per municipality."""
    mat, names = draw_matrix(ranks)
    return pd.Series((_oriented(mat, tail) <= k).mean(axis=0), index=names)


def _needed(count: np.ndarray, n_draws: int, ci_prob: float) -> int:
    """Smallest n with count[n] >= ci_prob * n_draws (count is cumulative, non-decreasing)."""
    return int(np.searchsorted(count, np.ceil(ci_prob * n_draws - 1e-9), side="left"))


def credible_set(ranks: xr.DataArray, *, k: int = 10, ci_prob: float = 0.9,
                 tail: str = "top") -> CredibleSet:
    """The smallest set found that contains all of the true top (bottom) k with ``ci_prob``.

    Municipalities are sorted by P(top k) (ties by mean rank); draw s needs the shortest
    prefix that holds its whole top k, and the set is the shortest prefix that enough draws
    need. Its probability is >= ``ci_prob`` by construction, whatever the posterior.

    Minimising the size exactly is a set-union covering problem (choose draws whose top-k
    sets have a small union), NP-hard in general; the prefix is the standard greedy answer. It
    is exact when the draws' top-k sets are nested along the P(top k) order (a clear leading
    group and a fuzzy margin, the usual case), and it is *proved* minimal when no set of one
    fewer can reach ``ci_prob`` by either bound: P(T ⊆ C) <= sum_{m in C} P(m in T) / k
    (Markov, since |T| >= k) and P(T ⊆ C) <= 1 - P(m in T) for any m outside C.

    Parameters
    ----------
    ranks : xarray.DataArray
        Rank draws (chain, draw, municipality), 1 = fastest.
    k : int
        Size of the top (bottom) set.
    ci_prob : float
        Required posterior probability.
    tail : {"top", "bottom"}
        Fastest or slowest.

    Returns
    -------
    CredibleSet
        ``kind = "contains"``; members in order of P(top k).

    Examples
    --------
    >>> r = xr.DataArray([[[1, 2, 3], [2, 1, 3]]], dims=("chain", "draw", "municipality"),
    ...                  coords={"municipality": ["A", "B", "C"]})
    >>> credible_set(r, k=1, ci_prob=0.9).members
    ('A', 'B')
    """
    mat, names = draw_matrix(ranks)
    mat = _oriented(mat, tail)
    n_draws, n_muni = mat.shape
    in_top = mat <= k
    p = in_top.mean(axis=0)
    order = np.lexsort((mat.mean(axis=0), -p))
    position = np.empty(n_muni, dtype=np.int64)
    position[order] = np.arange(1, n_muni + 1)
    need = np.where(in_top, position[None, :], 0).max(axis=1)
    count = np.bincount(need, minlength=n_muni + 1).cumsum()
    size = _needed(count, n_draws, ci_prob)
    p_sorted = p[order]
    smaller_bound = min(p_sorted[: size - 1].sum() / k, 1.0 - p_sorted[size - 1]) if size else 1
    return CredibleSet(tail=tail, kind="contains", k=k, ci_prob=ci_prob,
                       members=tuple(names[i] for i in order[:size]),
                       probability=float(count[size] / n_draws),
                       proved_minimal=bool(size == 0 or smaller_bound < ci_prob))


def each_set(ranks: xr.DataArray, *, k: int = 10, ci_prob: float = 0.9,
             tail: str = "top") -> CredibleSet:
    """The municipalities each in the top (bottom) k with probability at least ``ci_prob``.

    Returns
    -------
    CredibleSet
        ``kind = "each"``; ``probability`` is the joint probability that all members are in
        the top (bottom) k (1 for an empty set); members in order of P(top k).
    """
    mat, names = draw_matrix(ranks)
    in_top = _oriented(mat, tail) <= k
    p = in_top.mean(axis=0)
    order = [i for i in np.lexsort((_oriented(mat, tail).mean(axis=0), -p))
             if p[i] >= ci_prob - 1e-12]
    joint = in_top[:, order].all(axis=1).mean() if order else 1.0
    return CredibleSet(tail=tail, kind="each", k=k, ci_prob=ci_prob,
                       members=tuple(names[i] for i in order), probability=float(joint),
                       proved_minimal=True)


def rank_table(ranks: xr.DataArray, *, ci_prob: float = 0.9) -> pd.DataFrame:
    """Expected rank, posterior percentile and the rank distribution, one row each.

    Returns
    -------
    pandas.DataFrame
        ``municipality``, ``rank_mean``, ``percentile_mean`` (100 E[rank] / (K + 1), 0 =
        fastest), ``percentile_lo``, ``percentile_hi`` (equal-tailed ``ci_prob``), and
        ``p_rank_1`` .. ``p_rank_K``; sorted by mean rank. ``attrs["ci_prob"]`` is set.
    """
    mat, names = draw_matrix(ranks)
    n_muni = mat.shape[1]
    tail = (1 - ci_prob) / 2
    pct = 100 * mat / (n_muni + 1)
    probs = rank_probability_kernel(mat, n_muni, axis=0)
    table = pd.DataFrame({
        "municipality": names, "rank_mean": mat.mean(axis=0),
        "percentile_mean": pct.mean(axis=0),
        "percentile_lo": np.quantile(pct, tail, axis=0, method="lower"),
        "percentile_hi": np.quantile(pct, 1 - tail, axis=0, method="higher"),
    })
    dist = pd.DataFrame(probs, columns=[f"p_rank_{r}" for r in range(1, n_muni + 1)])
    table = pd.concat([table, dist], axis=1)
    table = table.sort_values(["rank_mean", "municipality"], kind="stable")
    table.attrs["ci_prob"] = ci_prob
    return table.reset_index(drop=True)


def triple_goal(effect: xr.DataArray, *, dim: str = DIM) -> xr.Dataset:
    """Triple-goal (GR) estimates of Shen and Louis (1998).

    Parameters
    ----------
    effect : xarray.DataArray
        Effect draws (chain, draw, municipality); rank 1 = most negative.
    dim : str
        The municipality dimension.

    Returns
    -------
    xarray.Dataset
        ``effect_gr`` (the (2 R̂ - 1) / (2K) quantile of the pooled draws) and ``rank_gr``
        (R̂: integer ranks of the expected ranks, ties by posterior mean), dim ``dim``.

    Examples
    --------
    >>> e = xr.DataArray([[[0.0, 1.0], [2.0, 3.0]]], dims=("chain", "draw", "municipality"))
    >>> triple_goal(e)["rank_gr"].values.tolist()
    [1, 2]
    """
    mat = effect.stack(sample=SAMPLE_DIMS).transpose("sample", dim).to_numpy()
    n_muni = mat.shape[1]
    rank_mean = rank_kernel(mat, axis=1).mean(axis=0)
    order = np.lexsort((mat.mean(axis=0), rank_mean))
    rank_hat = np.empty(n_muni, dtype=np.int64)
    rank_hat[order] = np.arange(1, n_muni + 1)
    levels = (2 * rank_hat - 1) / (2 * n_muni)
    gr = np.quantile(mat.ravel(), levels, method="inverted_cdf")
    coords = {dim: effect[dim]} if dim in effect.coords else {}
    return xr.Dataset({"effect_gr": ((dim,), gr), "rank_gr": ((dim,), rank_hat)},
                      coords=coords)


def boundary_events(ranks: np.ndarray) -> np.ndarray:
    """Per draw, whether the first c columns hold ranks 1..c, for c = 1..K-1 (S x K-1)."""
    top = np.maximum.accumulate(ranks, axis=1)[:, :-1]
    return top == np.arange(1, ranks.shape[1])[None, :]


def tiers(ranks: xr.DataArray, *, ci_prob: float = 0.9) -> pd.DataFrame:
    """Consecutive tiers in mean-rank order whose order is credible jointly at ``ci_prob``.

    Cuts are added greedily, most probable first, while the joint probability (share of draws
    in which every tier beats the next one) stays >= ``ci_prob``; a cut less probable than
    ``ci_prob`` on its own is never added. At the end no further cut keeps the level: the order
    within a tier is not credible. Greedy need not give the most tiers possible.

    Returns
    -------
    pandas.DataFrame
        ``municipality``, ``rank_mean``, ``tier`` (1 = fastest), ``tier_size``,
        ``p_faster_than_next`` (P(every member beats every member of the next tier), NaN for
        the last), ``tiering_probability`` (joint over all cuts); attrs ``ci_prob`` and
        ``tiering_probability``.
    """
    mat, names = draw_matrix(ranks)
    order = np.lexsort((np.array(names), mat.mean(axis=0)))
    events = boundary_events(mat[:, order])
    p_cut = events.mean(axis=0)
    alive = np.ones(mat.shape[0], dtype=bool)
    cuts: list[int] = []
    for c in np.argsort(-p_cut, kind="stable"):
        if p_cut[c] < ci_prob:
            break
        trial = alive & events[:, c]
        if trial.mean() >= ci_prob - 1e-12:
            alive, cuts = trial, [*cuts, int(c)]
    tier = np.ones(len(order), dtype=np.int64)
    for c in cuts:
        tier[c + 1:] += 1
    last = {t: max(i for i in range(len(order)) if tier[i] == t) for t in set(tier.tolist())}
    next_p = {t: (p_cut[i] if i < len(order) - 1 else np.nan) for t, i in last.items()}
    table = pd.DataFrame({
        "municipality": [names[i] for i in order], "rank_mean": mat.mean(axis=0)[order],
        "tier": tier, "tier_size": np.bincount(tier)[tier],
        "p_faster_than_next": [next_p[t] for t in tier.tolist()],
        "tiering_probability": float(alive.mean()),
    })
    table.attrs.update(ci_prob=ci_prob, tiering_probability=float(alive.mean()))
    return table


def within(ranks: xr.DataArray, names: Sequence[str], *, dim: str = DIM) -> xr.DataArray:
    """Ranks among ``names`` only, per draw, from ranks among all (same order as effects)."""
    sub = ranks.sel({dim: list(names)})
    return xr.apply_ufunc(rank_kernel, sub, input_core_dims=[[dim]], output_core_dims=[[dim]],
                          kwargs={"axis": -1}).rename("rank")


def pairwise_table(effect: xr.DataArray, municipalities: Sequence[str]) -> pd.DataFrame:
    """P(row faster than column) for named municipalities of the effect draws (diagonal 0)."""
    p = pairwise_faster(effect, municipalities).rename(other="faster_than")
    return p.to_pandas()


def pairwise(result_or_dir: Any, municipalities: Sequence[str]) -> pd.DataFrame:
    """P(row municipality is faster than column municipality), from the effect draws.

    Parameters
    ----------
    result_or_dir : FitResult, xarray.DataTree, str or Path
        A fit result, its posterior tree, or a fit folder (posterior.nc is read).
    municipalities : sequence of str
        The municipalities to compare, e.g. a municipality and its neighbours.

    Returns
    -------
    pandas.DataFrame
        Square table indexed and labelled by municipality; the diagonal is 0.

    Raises
    ------
    KeyError
        If a name is not a municipality of the fit.
    InputError
        If ``result_or_dir`` is a folder without a readable posterior.nc.

    Examples
    --------
    >>> pairwise("fit", ["Horsens", "Vejle"])  # doctest: +SKIP
    """
    effect = effect_draws(result_or_dir)
    missing = sorted(set(municipalities) - set(effect[DIM].to_numpy().tolist()))
    if missing:
        raise KeyError(f"not municipalities of this fit: {missing}")
    return pairwise_table(effect, municipalities)


def effect_draws(result_or_dir: Any) -> xr.DataArray:
    """The effect draws (``derived/effect_months``) of a fit result, tree or fit folder.

    Raises
    ------
    InputError
        If a folder has no posterior.nc, or one without ``derived/effect_months``.
    """
    tree = getattr(result_or_dir, "tree", result_or_dir)
    if isinstance(tree, xr.DataTree):
        return _latest_period(tree["derived"].to_dataset()["effect_months"].load())
    path = Path(result_or_dir) / "posterior.nc"
    if not path.is_file():
        raise InputError("not a fit folder: posterior.nc is missing (run `munirank fit` "
                         "first)", file=str(result_or_dir))
    try:
        with xr.open_dataset(path, group="derived", engine="netcdf4") as derived:
            return _latest_period(derived["effect_months"].load())
    except (OSError, KeyError, ValueError) as err:  # not netCDF, or no derived draws
        raise InputError(f"not the posterior of a fit: cannot read derived/effect_months "
                         f"({type(err).__name__}: {err})", file=str(path)) from None


def _latest_period(effect: xr.DataArray) -> xr.DataArray:
    """A fit with measurement periods: the latest period's draws (its municipalities)."""
    if "period" not in effect.dims:
        return effect
    return effect.isel(period=-1, drop=True).dropna(DIM, how="all")

