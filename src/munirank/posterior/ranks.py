"""Ranks and their summaries, computed draw by draw (rank 1 = fastest = most negative effect).

Numpy kernels take an ``axis``; the xarray wrappers work on named dims (``chain``, ``draw``,
``municipality``) and put the probability level of every interval in ``attrs``.

Rank probabilities P(rank of municipality m = r) are the share of posterior draws in which m
has rank r; each municipality's row sums to one. They are what the rank-distribution plot
draws (the plot only draws them; it computes nothing).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

SAMPLE_DIMS = ("chain", "draw")


def rank_kernel(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Ranks along ``axis``, 1 = smallest value (ties share the lowest rank).

    ``scipy.stats.rankdata(method="min")`` written in numpy (the same integers), so that a fit
    does not import scipy.stats (0.5-1 s); values with NaN go to scipy, for its NaN policy.
    """
    values = np.asarray(values)
    if values.dtype.kind == "f" and np.isnan(values).any():
        from scipy import stats

        return stats.rankdata(values, method="min", axis=axis).astype(np.int32)
    v = np.moveaxis(values, axis, -1)
    order = np.argsort(v, axis=-1, kind="stable")
    ordered = np.take_along_axis(v, order, axis=-1)
    starts_tie = np.ones(ordered.shape, bool)  # a new value: the first of its tie group
    starts_tie[..., 1:] = ordered[..., 1:] != ordered[..., :-1]
    first = np.where(starts_tie, np.arange(v.shape[-1], dtype=np.int32), 0)
    np.maximum.accumulate(first, axis=-1, out=first)
    ranks = np.empty(v.shape, np.int32)
    np.put_along_axis(ranks, order, first + 1, axis=-1)
    return np.moveaxis(ranks, -1, axis)


def rank_draws(effect: xr.DataArray, *, subset: Sequence[str] | None = None,
               dim: str = "municipality") -> xr.DataArray:
    """Rank municipalities in every draw (1 = most negative effect = fastest).

    Parameters
    ----------
    effect : xarray.DataArray
        Effect draws with dims (chain, draw, municipality); negative = better.
    subset : sequence of str, optional
        Rank only these municipalities against each other.
    dim : str
        The dimension to rank along.

    Returns
    -------
    xarray.DataArray
        Integer ranks, same dims as ``effect`` (restricted to ``subset``).

    Examples
    --------
    >>> da = xr.DataArray([[[0.5, -1.0, 0.2]]], dims=("chain", "draw", "municipality"),
    ...                   coords={"municipality": ["A", "B", "C"]})
    >>> rank_draws(da).values.tolist()
    [[[3, 1, 2]]]
    """
    if subset:
        effect = effect.sel({dim: list(subset)})
    return xr.apply_ufunc(rank_kernel, effect, input_core_dims=[[dim]],
                          output_core_dims=[[dim]], kwargs={"axis": -1}).rename("rank")


def _quantile(da: xr.DataArray, q: float, method: str) -> xr.DataArray:
    # skipna=False: posterior draws hold no NaN, and xarray's NaN-skipping quantile runs
    # numpy's nanquantile one municipality at a time (0.34 of the 0.57 s of the municipality
    # table of dk-1999-2005, measured)
    return da.quantile(q, dim=SAMPLE_DIMS, method=method, skipna=False).drop_vars("quantile")


def summarise_ranks(ranks: xr.DataArray, *, top_k: int = 10, ci_prob: float = 0.9) -> xr.Dataset:
    """Mean, median and interval of ranks, and P(top k), P(bottom k) per municipality.

    The rank interval is equal-tailed at ``ci_prob`` (lower bound rounded down, upper bound
    rounded up, so it covers at least ``ci_prob`` of the draws).

    Parameters
    ----------
    ranks : xarray.DataArray
        Output of :func:`rank_draws`.
    top_k : int
        Size of the top and bottom sets.
    ci_prob : float
        Probability of the rank interval.

    Returns
    -------
    xarray.Dataset
        ``rank_mean``, ``rank_median``, ``rank_lo``, ``rank_hi``, ``p_top{k}``,
        ``p_bottom{k}`` (dim ``municipality``).
    """
    n = ranks.sizes["municipality"]
    tail = (1 - ci_prob) / 2
    out = xr.Dataset({
        "rank_mean": ranks.mean(SAMPLE_DIMS),
        "rank_median": ranks.median(SAMPLE_DIMS, skipna=False),
        "rank_lo": _quantile(ranks, tail, "lower"),
        "rank_hi": _quantile(ranks, 1 - tail, "higher"),
        f"p_top{top_k}": (ranks <= top_k).mean(SAMPLE_DIMS),
        f"p_bottom{top_k}": (ranks > n - top_k).mean(SAMPLE_DIMS),
    })
    out.attrs.update(ci_prob=ci_prob, top_k=top_k, n_ranked=n)
    return out


def summarise_effect(draws: xr.DataArray, name: str, *, ci_prob: float = 0.9) -> xr.Dataset:
    """Posterior mean, median and equal-tailed ``ci_prob`` interval of one quantity.

    The three quantiles in one call (one partition of the draws; the median is the 0.5
    quantile, equal to numpy's median up to rounding).
    """
    tail = (1 - ci_prob) / 2
    q = draws.quantile([tail, 0.5, 1 - tail], dim=SAMPLE_DIMS, skipna=False)
    out = xr.Dataset({
        f"{name}_mean": draws.mean(SAMPLE_DIMS),
        f"{name}_median": q.isel(quantile=1, drop=True),
        f"{name}_lo": q.isel(quantile=0, drop=True),
        f"{name}_hi": q.isel(quantile=2, drop=True),
    })
    out.attrs["ci_prob"] = ci_prob
    return out


def pairwise_faster(effect: xr.DataArray, municipalities: Sequence[str]) -> xr.DataArray:
    """P(row municipality is faster than column municipality), for the named ones.

    Returns
    -------
    xarray.DataArray
        Dims (municipality, other); the diagonal is 0.
    """
    sel = effect.sel(municipality=list(municipalities))
    other = sel.rename(municipality="other")
    return (sel < other).mean(SAMPLE_DIMS).rename("p_faster")


def rank_probability_kernel(ranks: np.ndarray, n_ranks: int, axis: int = 0) -> np.ndarray:
    """Share of draws along ``axis`` with each rank 1..n_ranks (a new last axis).

    Parameters
    ----------
    ranks : numpy.ndarray
        Integer ranks (1-based); draws along ``axis``.
    n_ranks : int
        Largest possible rank.
    axis : int
        The draws axis.

    Returns
    -------
    numpy.ndarray
        ``ranks`` without ``axis``, with a last axis of length ``n_ranks``.

    Examples
    --------
    >>> rank_probability_kernel(np.array([[1, 2], [2, 1]]), 2).tolist()
    [[0.5, 0.5], [0.5, 0.5]]
    """
    moved = np.moveaxis(np.asarray(ranks), axis, -1)
    flat = moved.reshape(-1, moved.shape[-1]) - 1
    counts = np.zeros((flat.shape[0], n_ranks))
    rows = np.repeat(np.arange(flat.shape[0]), flat.shape[1])
    np.add.at(counts, (rows, flat.ravel()), 1.0)
    return (counts / flat.shape[1]).reshape(*moved.shape[:-1], n_ranks)


def rank_probabilities(ranks: xr.DataArray, *, dim: str = "municipality") -> xr.DataArray:
    """P(rank = r) per municipality, from rank draws (chain, draw, municipality).

    Parameters
    ----------
    ranks : xarray.DataArray
        Rank draws, e.g. the ``rank`` variable of the ``derived`` group of posterior.nc.
    dim : str
        The ranked dimension.

    Returns
    -------
    xarray.DataArray
        Dims (``dim``, ``rank``), ``rank`` = 1..n; rows sum to one.
    """
    stacked = ranks.stack(sample=SAMPLE_DIMS).transpose(dim, "sample")
    n = ranks.sizes[dim]
    probs = rank_probability_kernel(stacked.to_numpy(), n, axis=-1)
    return xr.DataArray(probs, dims=(dim, "rank"),
                        coords={dim: ranks[dim].to_numpy(), "rank": np.arange(1, n + 1)},
                        name="rank_probability")
