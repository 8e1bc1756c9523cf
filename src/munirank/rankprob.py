"""Rank probabilities: P(rank of municipality m = r), from the rank draws.

Rank 1 = fastest. The probabilities are the share of posterior draws in which municipality m
has rank r; each municipality's row sums to one. They are what the rank-distribution plot
draws (the plot only draws them; it computes nothing).
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from munirank.ranks import SAMPLE_DIMS


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
