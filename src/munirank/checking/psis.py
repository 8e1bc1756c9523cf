r"""PSIS-LOO of every episode in one compiled pass: arviz-stats' algorithm, vectorised.

For each episode :math:`i` with log-likelihood draws :math:`\ell_{is}` (:math:`S` draws),
Pareto-smoothed importance sampling (Vehtari, Simpson, Gelman, Yao and Gabry 2024) as
:func:`arviz_stats.loo` computes it:

- log ratios :math:`r_s = -\ell_{is} - \max_s(-\ell_{is})`; the :math:`M` largest
  (:math:`M = \lfloor 3\sqrt{S / r_\text{eff}}\rfloor`, or :math:`\lfloor S/5 \rfloor` when
  :math:`S r_\text{eff} \le 225`) are the tail, the next one down the cutoff :math:`c`;
- a generalised Pareto distribution fitted to :math:`e^{r} - e^{c}` of the tail (Zhang and
  Stephens' empirical Bayes estimate on :math:`30 + \lfloor\sqrt M\rfloor` grid points, with
  the weakly informative prior on :math:`\hat k` centred at 0.5, weight 10);
- the tail replaced by the fitted quantiles at :math:`(j - 1/2)/M`, capped at the largest
  tail ratio, and the weights normalised: :math:`w_s = r_s - \log\sum e^{r}`;
- :math:`\text{elpd}_i = \log\sum_s e^{w_s + \ell_{is}}`,
  :math:`\text{lppd}_i = \log(\frac1S\sum_s e^{\ell_{is}})`,
  :math:`p_{\text{loo},i} = \text{lppd}_i - \text{elpd}_i`.

Why by hand: arviz-stats runs this per episode in Python (``make_ufunc`` over the episodes:
2-4 ms each), 45-95 s for the 23,563 episodes of ``dk-1999-2005`` with 4,000 draws on the
2-core machine of issue 29, for every model of ``munirank check``. Here the episodes run in
parallel (numba ``prange``) and the tail is found among the draws above an order statistic
of every 16th draw, one sort of about twice the tail's length instead of a full sort; the
result equals arviz-stats' to rounding (tested: elpd, p_loo and :math:`\hat k` per episode,
relative 1e-10). The log-likelihood arrives in blocks of episodes, so no draws x episodes
array of the whole register is ever held.
"""

from __future__ import annotations

import math
from typing import Any

import arviz_stats  # noqa: F401  (registers the .azstats accessor)
import numba
import numpy as np
import xarray as xr

from munirank.model.kernel import FASTMATH, _bits
from munirank.model.kernel import exp as fast_exp
from munirank.model.vector_math import log1p, sources_key

_PRIOR_BS = 3.0  # Zhang and Stephens' grid scale
_PRIOR_K = 10.0  # weight of the prior on k (centred at 0.5)
_EPS = float(np.finfo(float).eps)
_TINY = float(np.finfo(float).tiny)


def tail_length(n_samples: int, r_eff: float) -> int:
    """Draws in the Pareto tail (arviz-stats' rule)."""
    if n_samples * r_eff > 225:
        return int(np.floor(3 * (n_samples / r_eff) ** 0.5))
    return int(np.floor(n_samples / 5))


_LANES = 8


# helpers are compiled only when the entry point is (not cached themselves: see
# munirank.model.vector_math.sources_key)
@numba.njit
def _max(a):  # noqa: ANN001, ANN202
    """``a.max()`` (NaN if any element is NaN), in eight running maxima.

    Why by hand: numba's ``max`` is one chain of compare-and-branch with an exit at a NaN,
    2.2 us for 4,000 draws; eight independent maxima and a NaN flag take 1.3 us (measured),
    and PSIS takes four maxima of every episode's draws. The maximum of numbers is exact,
    so the value is the same.
    """
    n = a.shape[0]
    lanes = np.full(_LANES, -np.inf)
    nan = False
    body = n - n % _LANES
    for s in range(0, body, _LANES):
        for j in range(_LANES):
            v = a[s + j]
            lanes[j] = v if v > lanes[j] else lanes[j]
            nan |= v != v
    top = lanes[0]
    for j in range(1, _LANES):
        top = lanes[j] if lanes[j] > top else top
    for s in range(body, n):
        v = a[s]
        top = v if v > top else top
        nan |= v != v
    return np.nan if nan else top


@numba.njit(fastmath=FASTMATH)
def _logsumexp(a):  # noqa: ANN001, ANN202
    top = _max(a)
    if not np.isfinite(top):
        return top
    acc = 0.0
    for k in range(a.shape[0]):
        acc += fast_exp(a[k] - top)
    return math.log(acc) + top


@numba.njit(fastmath=FASTMATH)
def _mean_log1p(b, x):  # noqa: ANN001, ANN202
    """Mean of log1p(-b x) over x (vectorised)."""
    acc = 0.0
    for k in range(x.shape[0]):
        acc += log1p(-b * x[k])
    return acc / x.shape[0]


@numba.njit
def _gpdfit(x):  # noqa: ANN001, ANN202
    """(k, sigma) of a generalised Pareto fitted to sorted exceedances ``x`` (arviz-stats).

    The caller checks that the first quartile exceeds the minimum (:func:`_gpd_khat`):
    an early return here stopped LLVM from vectorising the loops (7 times slower, measured).
    """
    n = x.shape[0]
    m_est = 30 + int(n**0.5)
    xstar = x[_quartile(n)]
    b = np.empty(m_est)
    len_scale = np.empty(m_est)
    for j in range(m_est):
        b[j] = (1 - math.sqrt(m_est / (j + 1 - 0.5))) / (_PRIOR_BS * xstar) + 1 / x[-1]
        k = _mean_log1p(b[j], x)
        len_scale[j] = n * (math.log(-b[j] / k) - k - 1)
    top = _logsumexp(len_scale)
    w_sum = 0.0
    b_post = 0.0
    for j in range(m_est):
        w = math.exp(len_scale[j] - top)
        if w >= 10 * _EPS:  # negligible weights dropped, as arviz-stats does
            w_sum += w
            b_post += b[j] * w
    b_post /= w_sum
    kappa = _mean_log1p(b_post, x)
    sigma = -kappa / b_post
    kappa = (n * kappa + _PRIOR_K * 0.5) / (n + _PRIOR_K)
    return (np.inf if np.isnan(kappa) else kappa), sigma


@numba.njit
def _quartile(n):  # noqa: ANN001, ANN202
    return int((n / 4 + 0.5) - 1)


@numba.njit
def _gpd_khat(x):  # noqa: ANN001, ANN202
    """:func:`_gpdfit`, or (nan, nan) where the first quartile is the minimum (arviz-stats)."""
    if x[_quartile(x.shape[0])] <= x[0]:
        return np.nan, np.nan
    return _gpdfit(x)


_STRIDE = 16  # subsample of the draws that locates the tail
_SIGN = np.int64(-0x8000000000000000)  # the sign bit of an int64
_FLIP = np.int64(0x7FFFFFFFFFFFFFFF)


@numba.njit
def _radix_order(vals, n, scratch):  # noqa: ANN001, ANN202
    """The stable ascending order of ``vals[:n]`` (ties by index), by an LSD radix sort.

    Each float becomes an int64 with the same order (its bits, the magnitude bits flipped for
    negatives, then the sign bit flipped; -0.0 counts as 0.0), sorted a byte at a time, bytes
    where every key agrees skipped. Why by hand: numba's argsort of the ~540 tail candidates
    of 4,000 draws took 30-44 us a row (branchy comparisons on fresh data), this 11 us
    (measured); a stable order is what ``mergesort`` gives. ``scratch``: int64, (4, >= n).
    """
    keys, tmpk, idx, tmpi = scratch[0], scratch[1], scratch[2], scratch[3]
    counts = np.empty(256, np.int64)
    diff = np.int64(0)
    for j in range(n):
        b = _bits(vals[j] + 0.0)
        b = b ^ _FLIP if b < 0 else b
        keys[j] = b ^ _SIGN
        idx[j] = j
        diff |= keys[j] ^ keys[0]
    for p in range(8):
        shift = 8 * p
        if (diff >> shift) & 255 == 0:
            continue
        counts[:] = 0
        for j in range(n):
            counts[(keys[j] >> shift) & 255] += 1
        total = 0
        for c in range(256):
            here = counts[c]
            counts[c] = total
            total += here
        for j in range(n):
            digit = (keys[j] >> shift) & 255
            pos = counts[digit]
            counts[digit] = pos + 1
            tmpk[pos] = keys[j]
            tmpi[pos] = idx[j]
        keys, tmpk = tmpk, keys
        idx, tmpi = tmpi, idx
    return idx[:n]


@numba.njit
def _largest(lw, k, vals, scratch):  # noqa: ANN001, ANN202
    """Indices of the k largest values of ``lw``, ascending by value (ties by index).

    The candidates are the values at or above an order statistic of every 16th draw, chosen
    so that about 2k draws pass (all draws if fewer than k do), gathered without branches
    into ``vals`` (float, >= len(lw)) and ordered by :func:`_radix_order` (``scratch``: int64,
    (5, >= len(lw)), its first row the candidates' indices). Stable, as a full merge sort:
    tested against arviz-stats with ties.
    """
    n = lw.shape[0]
    m = (n + _STRIDE - 1) // _STRIDE
    rank = m - 1 - (2 * k) // _STRIDE
    candidates = scratch[0]
    count = 0
    if rank >= 0:
        for j in range(m):
            vals[j] = lw[j * _STRIDE]
        tau = np.partition(vals[:m], rank)[rank]
        for s in range(n):  # branch-free: the index is written, then kept or overwritten
            candidates[count] = s
            count += lw[s] >= tau
    if count < k:  # too few above the order statistic (or too few draws): all of them
        for s in range(n):
            candidates[s] = s
        count = n
    for j in range(count):
        vals[j] = lw[candidates[j]]
    order = _radix_order(vals, count, scratch[1:])
    top = scratch[1, :k]  # the sort's keys, no longer needed (its order is in row 3 or 4)
    for j in range(k):
        top[j] = candidates[order[count - k + j]]
    return top


@numba.njit
def tail_log_survival(n_tail):  # noqa: ANN001, ANN202
    """log(1 - p_j) at the tail's plotting positions p_j = (j + 1/2)/M, j < M = ``n_tail``.

    The same for every episode: :func:`psis_row` takes it from its caller, computed once.
    """
    out = np.empty(n_tail)
    for j in range(n_tail):
        p = (j + 0.5) / n_tail
        out[j] = math.log1p(-p)
    return out


@numba.njit
def _smooth_log_weights(lw, n_tail, log_surv, work, scratch):  # noqa: ANN001, ANN202
    """Pareto-smooth log ratios ``lw`` (their maximum 0) in place; return (k-hat, ok).

    The caller normalises them. ``ok`` is false for a tail of one repeated value, which
    arviz-stats refuses (the caller raises: an exception cannot leave numba's parallel loop).
    ``log_surv``: :func:`tail_log_survival` of ``n_tail``; ``work``: float, (2, >= len(lw));
    ``scratch``: int64, (5, >= len(lw)).
    """
    top = _largest(lw, n_tail + 1, work[0], scratch)  # ascending: the cutoff, then the tail
    cutoff = lw[top[0]]
    tail_idx = top[1:]
    tail = work[1, :n_tail]
    for j in range(n_tail):
        tail[j] = lw[tail_idx[j]]
    max_tail, min_tail = tail[-1], tail[0]
    if abs(max_tail - min_tail) < _TINY:
        return np.nan, False
    exp_cut = math.exp(cutoff)
    x = work[0, :n_tail]
    for j in range(n_tail):
        x[j] = math.exp(tail[j]) - exp_cut
    khat, sigma = _gpd_khat(x)
    if np.isfinite(khat):
        for j in range(n_tail):
            if sigma <= 0:
                q = np.nan
            elif khat == 0:
                q = exp_cut - sigma * log_surv[j]
            else:
                q = exp_cut + sigma * math.expm1(-khat * log_surv[j]) / khat
            smoothed = math.log(q)
            lw[tail_idx[j]] = max_tail if smoothed > max_tail else smoothed
    return khat, True


@numba.njit
def row_scratch(n):  # noqa: ANN001, ANN202
    """(lw, work, scratch): :func:`psis_row`'s scratch for rows of ``n`` draws, one per thread."""
    return np.empty(n), np.empty((2, n)), np.empty((5, n), np.int64)


@numba.njit
def psis_row(ll, n_tail, log_surv, lw, work, scratch):  # noqa: ANN001, ANN202
    """(elpd, k-hat, p_loo, ok) of one episode's log-likelihood draws ``ll``.

    ``log_surv``: :func:`tail_log_survival` of ``n_tail``. Scratch: ``lw`` float
    (>= len(ll)), ``work`` float (2, >= len(ll)), ``scratch`` int64 (5, >= len(ll));
    nothing is allocated per row but the radix sort's 256 counts. The log ratios are
    -ll - max(-ll) and the normalised weights plus ll are formed in one pass each (the
    same operations as arviz-stats' separate steps, so the same values).
    """
    n = ll.shape[0]
    lw = lw[:n]
    for s in range(n):
        lw[s] = -ll[s]
    top = _max(lw)
    for s in range(n):
        lw[s] -= top
    khat, ok = _smooth_log_weights(lw, n_tail, log_surv, work, scratch)
    norm = _logsumexp(lw)
    for s in range(n):
        lw[s] = (lw[s] - norm) + ll[s]
    elpd = _logsumexp(lw)
    return elpd, khat, _logsumexp(ll) - math.log(n) - elpd, ok


def _compile_loo_rows(key: int):  # noqa: ANN202
    @numba.njit(cache=True)
    def loo_rows(loglik, n_tail):  # noqa: ANN001, ANN202
        """elpd, k-hat and p_loo of each row (episode) of ``loglik`` (episodes x draws)."""
        _ = key  # in numba's cache index: an edit of a module used here recompiles
        return _loo_rows(loglik, n_tail)

    return loo_rows


ROWS_PER_CHUNK = 64
"""Rows a thread takes at a time (its scratch is allocated once per chunk; also
:mod:`munirank.checking.loo`'s episodes per chunk)."""


@numba.njit(parallel=True)
def _loo_rows(loglik, n_tail):  # noqa: ANN001, ANN202
    n_rows, n = loglik.shape
    elpd = np.empty(n_rows)
    khat = np.empty(n_rows)
    p_loo = np.empty(n_rows)
    flat = np.zeros(n_rows, np.bool_)
    n_chunks = (n_rows + ROWS_PER_CHUNK - 1) // ROWS_PER_CHUNK
    log_surv = tail_log_survival(n_tail)
    for c in numba.prange(n_chunks):
        lw, work, scratch = row_scratch(n)
        for i in range(c * ROWS_PER_CHUNK, min((c + 1) * ROWS_PER_CHUNK, n_rows)):
            elpd[i], khat[i], p_loo[i], ok = psis_row(loglik[i], n_tail, log_surv, lw, work,
                                                      scratch)
            flat[i] = not ok
    return elpd, khat, p_loo, flat


def psis_loo_rows(loglik: np.ndarray, *, r_eff: float) -> tuple[np.ndarray, ...]:
    """PSIS-LOO of each row of a (episodes, draws) log-likelihood block.

    Parameters
    ----------
    loglik : numpy.ndarray
        Shape (episodes, draws); the draws in ``(chain, draw)`` order, chains first.
    r_eff : float
        Relative efficiency of the draws (:func:`relative_efficiency`).

    Returns
    -------
    elpd_i, pareto_k, p_loo_i : numpy.ndarray
        One value per row.
    """
    loglik = np.ascontiguousarray(loglik, dtype=float)
    elpd, khat, p_loo, flat = loo_rows(loglik, tail_length(loglik.shape[1], r_eff))
    if flat.any():
        raise ValueError("All tail values are the same")  # arviz-stats' error
    return elpd, khat, p_loo


loo_rows = _compile_loo_rows(sources_key(__name__, "munirank.model.vector_math",
                                         "munirank.model.kernel"))


def relative_efficiency(posterior: xr.Dataset) -> float:
    """arviz-stats' r_eff: mean ESS ("mean" method) of the posterior's variables over draws."""
    n_samples = posterior.sizes["chain"] * posterior.sizes["draw"]
    if posterior.sizes["chain"] == 1:
        return 1.0
    ess = posterior.azstats.ess(method="mean")
    return float(np.hstack([ess[v].values.ravel() for v in ess.data_vars]).mean() / n_samples)


def loo_result(elpd_i: np.ndarray, pareto_k: np.ndarray, p_loo_i: np.ndarray, *,
               n_samples: int) -> Any:
    """An :class:`arviz_stats.utils.ELPDDataLOO` from pointwise values, as arviz-stats builds it.

    The pointwise values (per episode) live in memory only. Raises arviz-stats' warning when
    a Pareto k exceeds its threshold.
    """
    from arviz_stats.loo.loo_helper import _warn_pareto_k
    from arviz_stats.utils import ELPDDataLOO

    elpd_da = xr.DataArray(elpd_i, dims=["episode"])
    p_da = xr.DataArray(p_loo_i, dims=["episode"])
    k_da = xr.DataArray(pareto_k, dims=["episode"])
    elpd, se, p_loo, _ = elpd_da.azstats.loo_summary(p_da)
    warn_mg, good_k = _warn_pareto_k(k_da, n_samples)
    return ELPDDataLOO(elpd=elpd, se=se, p=p_loo, n_samples=n_samples,
                       n_data_points=len(elpd_i), scale="log", warning=warn_mg, good_k=good_k,
                       elpd_i=elpd_da, pareto_k=k_da, approx_posterior=False)
