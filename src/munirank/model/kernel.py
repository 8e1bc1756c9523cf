r"""The Weibull cumulative hazard of all episodes and its gradient, in one pass.

The log-likelihood (:mod:`munirank.model.build`) has one term per episode that does not reduce to
sufficient statistics, the cumulative hazard

.. math::

    C = \sum_i e^{\eta_i + \alpha \log t_i} - \sum_{i:\, s_i > 0} e^{\eta_i + \alpha\log s_i},
    \qquad \eta_i = a_{m(i)} + x_i^\top w,

with :math:`a_m = \beta_0 + z_m^\top\gamma + u_m` (plus the centring offset below). Its
gradient is :math:`\partial C/\partial a_m = \sum_{i \in m} h_i`,
:math:`\partial C/\partial w = \sum_i h_i x_i` and
:math:`\partial C/\partial\alpha = \sum_i h_i^{(t)}\log t_i - h_i^{(s)}\log s_i`, where
:math:`h_i` is episode i's term. Written by hand as a PyTensor Op because the sampler spends
almost all of its time here, and PyTensor's graph computes it in several passes over the data
(the design matrix, its transpose, an indexed gather and a scatter-add), each reading every
episode again. This Op reads each episode once for the value and once for the gradient,
block by block while the block is in cache: the whole gradient of the model costs 0.18 ms
instead of 0.52 ms on ``dk-1999-2005`` and 7 ms instead of 50 ms at a million episodes
(measured, one thread; 0.23 and 10 ms before the pattern lookup below). Nothing is
approximated:

- covariates whose un-standardised values are small integers (dummies, counts, ages in
  years) are stored as their raw ``int8`` values, an eighth of the memory of the
  standardised float64 column; the model multiplies them by ``beta / scale`` and moves
  ``-centre * beta / scale`` into the intercept, which is the same linear predictor;
  other covariates stay standardised float64;
- of those small-integer covariates, the ones with few values (dummies of categorical
  covariates, binary ones) are looked up by pattern: their part of the linear predictor is
  computed once per distinct pattern of values, and each episode reads its pattern's value
  (and adds its term to the pattern's gradient) instead of multiplying column by column.
  On ``dk-1999-2005`` 17 of the 20 columns form 2,861 patterns of 23,563 episodes, and the
  kernel takes 0.17-0.18 ms instead of 0.21-0.23 ms (medians of 1,000 calls, one thread);
  which columns pay is decided by a cost estimate (:func:`pattern_columns`). The pattern
  table holds int8 raw values (48 KB instead of 389 KB in float64 there): 4.5 % off the
  kernel on ``dk-1999-2005``, 3 % at a million episodes (paired medians of 12 x 1,000 calls);
- episodes are reordered (delayed entries first, then by municipality), which changes no sum;
- the passes over a block stay separate loops: each vectorises on its own. Measured and not
  kept (dk-1999-2005, AVX-512 EPYC, medians of 9-11 x 500 calls, 70-72 us as written):
  one loop gathering both ``a`` and ``c`` per episode (73.5 us); the municipality sums added
  in the pattern scatter loop, four interleaved copies of ``g_a`` (77.3); the exponential,
  the int8 columns and their sums in one loop (105); segment loops 8 episodes at a time,
  without a remainder loop (71.3-71.8), also with every municipality padded to a multiple
  of 8 by episodes of zero hazard (71.7);
- :func:`exp` is a vectorisable exponential accurate to 1 ulp (measured over
  :math:`[-708, 709]` against ``numpy.exp``), because numba calls the scalar libm ``exp``,
  which LLVM cannot vectorise without Intel's SVML.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import numba
import numpy as np
import pandas as pd
import pytensor
import pytensor.tensor as pt
from llvmlite import ir
from numba.extending import intrinsic
from pytensor.gradient import DisconnectedType, disconnected_type, grad_not_implemented
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key

BLOCK = 1024
"""Episodes per block: the block's linear predictors and terms stay in the L1/L2 cache."""

SMALL_INT = (-128, 127)
"""Range of raw covariate values stored as int8."""

# PyTensor's own fastmath flags for numba (reassociation lets LLVM vectorise the sums)
FASTMATH = {"arcp", "contract", "afn", "reassoc", "nsz"}

_LOG2E = 1.4426950408889634
_LN2_HI = 6.93147180369123816490e-01  # ln 2 split in two (Cody and Waite) for exact reduction
_LN2_LO = 1.90821492927058770002e-10
_SHIFT = 6755399441055744.0  # 1.5 * 2**52: adding it rounds to an integer in the low bits
(_C0, _C1, _C2, _C3, _C4, _C5, _C6, _C7, _C8, _C9, _C10, _C11, _C12,
 _C13) = (1.0 / math.factorial(k) for k in range(14))


@intrinsic
def _bits(typingctx, x):  # noqa: ANN001, ANN202
    """The int64 with the same bits as a float64 (LLVM bitcast)."""
    def codegen(context, builder, sig, args):  # noqa: ANN001, ANN202
        return builder.bitcast(args[0], ir.IntType(64))
    return numba.types.int64(numba.types.float64), codegen


@intrinsic
def _from_bits(typingctx, x):  # noqa: ANN001, ANN202
    """The float64 with the same bits as an int64 (LLVM bitcast)."""
    def codegen(context, builder, sig, args):  # noqa: ANN001, ANN202
        return builder.bitcast(args[0], ir.DoubleType())
    return numba.types.float64(numba.types.int64), codegen


@numba.njit(fastmath={"contract"}, cache=True)
def exp(x0: float) -> float:
    r""":math:`e^x` that LLVM can vectorise (no reassociation allowed: it relies on rounding).

    :math:`x = k \ln 2 + r`, :math:`|r| \le \ln 2 / 2`; :math:`e^r` by its Taylor series to
    degree 13 (truncation error below 1e-17); :math:`2^k` as :math:`2 \cdot 2^{k-1}`, built
    from its bits (:math:`x` up to :math:`\log(\text{DBL\_MAX}) \approx 709.78` needs
    :math:`k = 1024`, one beyond the largest exponent). Overflow gives ``inf``; :math:`x < -708`
    gives 0 (no subnormals: :math:`e^{-708} \approx 3.3 \cdot 10^{-308}`, near the smallest
    normal number); NaN stays NaN.
    """
    x = min(max(x0, -708.0), 709.79)
    kd = x * _LOG2E + _SHIFT
    k = kd - _SHIFT
    r = (x - k * _LN2_HI) - k * _LN2_LO
    p = _C13
    p = p * r + _C12
    p = p * r + _C11
    p = p * r + _C10
    p = p * r + _C9
    p = p * r + _C8
    p = p * r + _C7
    p = p * r + _C6
    p = p * r + _C5
    p = p * r + _C4
    p = p * r + _C3
    p = p * r + _C2
    p = p * r + _C1
    p = p * r + _C0
    # 2 p is exact; one rounding, in the product with 2**(k-1)
    y = (p * 2.0) * _from_bits((_bits(kd) - _bits(_SHIFT) + 1022) << 52)
    y = np.inf if x0 > 709.79 else y
    return 0.0 if x0 < -708.0 else y


@numba.njit(fastmath=FASTMATH, cache=True)
def _segment_fill(eta, a, seg_start, seg_m, seg, b0, b1):  # noqa: ANN001, ANN202
    """Set eta of block [b0, b1) to a_m of each episode's municipality (segments from seg)."""
    s = seg
    while seg_start[s] < b1:
        am = a[seg_m[s]]
        for k in range(max(seg_start[s], b0) - b0, min(seg_start[s + 1], b1) - b0):
            eta[k] = am
        if seg_start[s + 1] > b1:
            break
        s += 1


@numba.njit(fastmath=FASTMATH, cache=True)
def _segment_sums(h, g_a, seg_start, seg_m, seg, b0, b1):  # noqa: ANN001, ANN202
    """Add the block's terms to g_a by municipality; return the first unfinished segment."""
    while seg_start[seg] < b1:
        acc = 0.0
        for k in range(max(seg_start[seg], b0) - b0, min(seg_start[seg + 1], b1) - b0):
            acc += h[k]
        g_a[seg_m[seg]] += acc
        if seg_start[seg + 1] > b1:
            break
        seg += 1
    return seg


@numba.njit(fastmath=FASTMATH, cache=True)
def _add_columns(eta, x, w, b0, b1):  # noqa: ANN001, ANN202
    """eta[:nb] += x[:, b0:b1].T @ w, one column at a time (contiguous, vectorised)."""
    for j in range(x.shape[0]):
        wj = w[j]
        xj = x[j, b0:b1]
        for k in range(b1 - b0):
            eta[k] += xj[k] * wj


@numba.njit(fastmath=FASTMATH, cache=True)
def _column_sums(g, h, x, b0, b1):  # noqa: ANN001, ANN202
    """Add x[:, b0:b1] @ h[:nb] to g."""
    for j in range(x.shape[0]):
        xj = x[j, b0:b1]
        acc = 0.0
        for k in range(b1 - b0):
            acc += h[k] * xj[k]
        g[j] += acc


@numba.njit(fastmath=FASTMATH, cache=True)
def _terms(eta, h, log_time, alpha, sign, nb):  # noqa: ANN001, ANN202
    """h[:nb] += sign * exp(eta + alpha log_time); return sum of those terms times log_time."""
    acc = 0.0
    for k in range(nb):
        e = exp(eta[k] + alpha * log_time[k])
        h[k] += sign * e
        acc += e * log_time[k]
    return sign * acc


@numba.njit(fastmath=FASTMATH, cache=True)
def _add_patterns(eta, c, pattern, b0, b1):  # noqa: ANN001, ANN202
    """eta[:nb] += c[pattern of each episode of the block] (a gather from a small table)."""
    for k in range(b1 - b0):
        eta[k] += c[pattern[b0 + k]]


@numba.njit(fastmath=FASTMATH, cache=True)
def _pattern_sums(g_c, h, pattern, b0, b1):  # noqa: ANN001, ANN202
    """g_c[pattern] += h over the block's episodes (a scatter-add into the small table)."""
    for k in range(b1 - b0):
        g_c[pattern[b0 + k]] += h[k]


@numba.njit(fastmath=FASTMATH, cache=True)
def _blocks(a, w_small, w_real, c, alpha, x_small, x_real, pattern, log_t, log_s, seg_start,  # noqa: ANN001, ANN202, PLR0913
            seg_m):
    """C, dC/da, dC/dw_small, dC/dw_real, dC/dc, dC/dalpha.

    On the raw and standardised columns and the per-pattern part ``c`` of the linear
    predictor (``c`` empty: no pattern columns).
    """
    n = log_t.shape[0]
    n_delayed = log_s.shape[0]
    g_a = np.zeros(a.shape[0])
    g_small = np.zeros(x_small.shape[0])
    g_real = np.zeros(x_real.shape[0])
    g_c = np.zeros(c.shape[0])
    patterns = c.shape[0] > 0
    g_alpha = 0.0
    eta = np.empty(BLOCK)
    h = np.empty(BLOCK)
    seg = 0
    for b0 in range(0, n, BLOCK):
        b1 = min(b0 + BLOCK, n)
        nb = b1 - b0
        _segment_fill(eta, a, seg_start, seg_m, seg, b0, b1)
        if patterns:
            _add_patterns(eta, c, pattern, b0, b1)
        _add_columns(eta, x_small, w_small, b0, b1)
        _add_columns(eta, x_real, w_real, b0, b1)
        h[:nb] = 0.0
        g_alpha += _terms(eta, h, log_t[b0:b1], alpha, 1.0, nb)
        nd = min(max(n_delayed - b0, 0), nb)
        if nd:
            g_alpha += _terms(eta, h, log_s[b0:b0 + nd], alpha, -1.0, nd)
        seg = _segment_sums(h, g_a, seg_start, seg_m, seg, b0, b1)
        if patterns:
            _pattern_sums(g_c, h, pattern, b0, b1)
        _column_sums(g_small, h, x_small, b0, b1)
        _column_sums(g_real, h, x_real, b0, b1)
    return g_a.sum(), g_a, g_small, g_real, g_c, g_alpha


@numba.njit(cache=True)
def _unpack(floats, layout):  # noqa: ANN001, ANN202
    """The arrays packed by :func:`hazard_data` (see :class:`HazardData`)."""
    n, n_delayed, p_small, p_real, n_seg = layout[0], layout[1], layout[2], layout[3], layout[4]
    p_pattern = layout[5]
    o = 6
    small = layout[o:o + p_small]
    o += p_small
    real = layout[o:o + p_real]
    o += p_real
    in_pattern = layout[o:o + p_pattern]
    o += p_pattern
    seg_start = layout[o:o + n_seg + 2]
    seg_m = layout[o + n_seg + 2:o + 2 * n_seg + 3]
    p = p_small + p_real + p_pattern
    log_t = floats[:n]
    o = n
    log_s = floats[o:o + n_delayed]
    o += n_delayed
    centre = floats[o:o + p]
    scale = floats[o + p:o + 2 * p]
    return small, real, in_pattern, seg_start, seg_m, log_t, log_s, centre, scale


@numba.njit(fastmath=FASTMATH, cache=True)
def cumulative_hazard_kernel(a, beta, alpha, x_small, x_real, pattern, table, floats, layout):  # noqa: ANN001, ANN201, PLR0913
    """Value and gradient of the cumulative hazard (module docstring), one pass per block.

    ``a`` and ``beta`` are the model's: per-municipality level and coefficients of the
    standardised covariates. The raw int8 columns get ``w = beta / scale`` and the intercept
    ``-sum(w * centre)``; the chain rule maps their gradient back to ``beta``. The pattern
    columns enter as ``c = table @ w`` for each distinct pattern, looked up per episode.
    Returns ``(C, dC/da, dC/dbeta, dC/dalpha)``.
    """
    small, real, in_pattern, seg_start, seg_m, log_t, log_s, centre, scale = _unpack(
        floats, layout)
    w_small = beta[small] / scale[small]
    w_pattern = beta[in_pattern] / scale[in_pattern]
    offset = -(w_small * centre[small]).sum() - (w_pattern * centre[in_pattern]).sum()
    c = np.zeros(table.shape[1])  # no pattern columns: a (0, 0) table, no patterns
    _add_columns(c, table, w_pattern, 0, c.shape[0])
    total, g_a, g_small, g_real, g_c, g_alpha = _blocks(
        a + offset, w_small, beta[real], c, alpha.item(), x_small, x_real, pattern, log_t,
        log_s, seg_start, seg_m)
    g_beta = np.zeros(beta.shape[0])
    g_beta[small] = (g_small - total * centre[small]) / scale[small]
    g_pattern = np.zeros(table.shape[0])
    _column_sums(g_pattern, g_c, table, 0, g_c.shape[0])
    g_beta[in_pattern] = (g_pattern - total * centre[in_pattern]) / scale[in_pattern]
    g_beta[real] = g_real
    return np.array(total), g_a, g_beta, np.array(g_alpha)


@dataclass(frozen=True)
class HazardData:
    """The episodes as the kernel reads them (built once per model by :func:`hazard_data`).

    Six arrays, the small ones packed: nutpie's own compilation (the fallback of
    :mod:`munirank.model.nutpie_compile`) compiles an extraction routine for every shared array of a
    model, about a second each (measured).

    Attributes
    ----------
    x_small : numpy.ndarray
        (covariates, episodes) int8: raw values of the small-integer covariates ``small``
        that vary too much to be looked up by pattern.
    x_real : numpy.ndarray
        (covariates, episodes) float64: standardised values of the covariates ``real``.
    pattern : numpy.ndarray
        int32 per episode: its row of distinct raw values of the pattern covariates
        ``in_pattern`` (dummies and other small-integer covariates with few values), so that
        their part of the linear predictor is computed once per pattern, not per episode.
    table : numpy.ndarray
        (pattern covariates, patterns) int8: the raw values of each distinct pattern, read
        twice per gradient (``c = table' w`` and the chain rule back to ``beta``); int8, an
        eighth of float64's memory (48 KB instead of 389 KB on ``dk-1999-2005``).
    floats : numpy.ndarray
        Log exit time (all episodes), log entry time (the delayed entries, which come
        first), the centre and the scale of every covariate.
    layout : numpy.ndarray
        int64: episodes, delayed entries, number of small and real covariates, number of
        segments S, number of pattern covariates; the indices ``small``, ``real`` and
        ``in_pattern`` into ``beta``; the start of each run of one municipality's episodes
        (S + 2, with sentinels) and its code (S + 1).
    """

    x_small: np.ndarray
    x_real: np.ndarray
    pattern: np.ndarray
    table: np.ndarray
    floats: np.ndarray
    layout: np.ndarray

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The arrays in the kernel's order of arguments."""
        return tuple(getattr(self, f.name) for f in fields(self))

    def unpacked(self) -> dict[str, np.ndarray]:
        """The packed arrays by name (small, real, in_pattern, seg_start, ..., scale), and table."""
        names = ("small", "real", "in_pattern", "seg_start", "seg_m", "log_t", "log_s",
                 "centre", "scale")
        parts = dict(zip(names, _unpack(self.floats, self.layout), strict=True))
        return {**parts, "table": self.table}


def _small_integer_columns(x: np.ndarray, centre: np.ndarray,
                           scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of columns whose raw values are integers in int8 range, and those raw values."""
    raw = x * scale + centre
    rounded = np.rint(raw)
    exact = np.abs(raw - rounded) <= 1e-9 * np.maximum(1.0, np.abs(rounded))
    fits = (rounded >= SMALL_INT[0]) & (rounded <= SMALL_INT[1])
    small = np.flatnonzero((exact & fits).all(axis=0))
    return small, rounded[:, small]


def pattern_columns(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which small-integer columns to look up by pattern, the patterns and each row's pattern.

    A column costs the kernel two multiply-adds per episode (value and gradient); the
    pattern columns together cost one lookup and one scatter-add per episode plus two
    multiply-adds per column and distinct pattern. Columns are taken in order of their
    number of distinct values while that lowers the total (an estimate in those units).
    On dk-1999-2005 it takes the 17 dummy and binary columns of 20 (2,861 patterns of
    23,563 episodes). Forcing other choices there (kernel time, best of 3 x 1,000 calls):
    none 0.215 ms, the 5 with fewest values (10 patterns) 0.231, 14 columns 0.174, 16 0.172,
    17 0.174, 18 (7,588 patterns) 0.199, all 20 (20,702 patterns) 0.305.

    Parameters
    ----------
    raw : numpy.ndarray
        (episodes, columns) raw integer values.

    Returns
    -------
    columns : numpy.ndarray
        Indices into ``raw``'s columns, empty if no pattern pays.
    table : numpy.ndarray
        (len(columns), patterns) int8, the raw values of each distinct pattern.
    pattern : numpy.ndarray
        int32 per row, its column of ``table``.
    """
    n, k = raw.shape
    values = raw.astype(np.int64) + 128  # int8 range: 0..255, counted without sorting
    order = np.argsort([np.count_nonzero(np.bincount(values[:, j], minlength=256))
                        for j in range(k)], kind="stable")
    best = (2.0 * k, 0, None)  # (cost per episode, number of columns, inverse)
    codes = np.zeros(n, np.int64)
    for used, j in enumerate(order, start=1):
        # mixed-radix code of the pattern so far (values are int8: a radix of 256 each)
        codes = codes * 256 + values[:, j]
        # hash-based renumbering (O(n); np.unique sorts: 2.5 s against 0.3 s at 1,000,000)
        inverse, distinct = pd.factorize(codes)
        codes = inverse.astype(np.int64)  # renumbered: the code stays below n
        table_cost = 2.0 * used * len(distinct) / n
        cost = 2.0 * (k - used) + 3.0 + table_cost
        if cost < best[0]:
            best = (cost, used, inverse)
        if 3.0 + table_cost >= best[0]:  # longer prefixes only cost more: stop
            break
    used, inverse = best[1], best[2]
    if used == 0:
        return np.zeros(0, np.int64), np.zeros((0, 0), np.int8), np.zeros(n, np.int32)
    columns = np.sort(order[:used])
    first = np.empty(inverse.max() + 1, np.int64)
    first[inverse[::-1]] = np.arange(n - 1, -1, -1)  # the last write wins: each first row
    return columns, raw[first][:, columns].T.astype(np.int8), inverse.astype(np.int32)


def episode_order(codes: np.ndarray, log_s: np.ndarray) -> np.ndarray:
    """The kernel's order of the episodes: delayed entries first, then by municipality."""
    return np.lexsort((codes, ~np.isfinite(log_s)))


def hazard_data(x: np.ndarray, centre: np.ndarray, scale: np.ndarray, codes: np.ndarray,
                log_t: np.ndarray, log_s: np.ndarray) -> HazardData:
    """Compact, reordered episodes for :func:`cumulative_hazard`.

    Parameters
    ----------
    x : numpy.ndarray
        Standardised design (episodes, covariates).
    centre, scale : numpy.ndarray
        Its standardisation: raw = x * scale + centre.
    codes : numpy.ndarray
        Municipality code of each episode.
    log_t : numpy.ndarray
        Log exit time of each episode (model time scale).
    log_s : numpy.ndarray
        Log entry time of each episode, ``-inf`` where there is no delayed entry.

    Returns
    -------
    HazardData
    """
    delayed = np.isfinite(log_s)
    order = episode_order(codes, log_s)
    small_all, raw_all = _small_integer_columns(x, centre, scale)
    raw_all = raw_all[order]
    in_table, table, pattern = pattern_columns(raw_all)
    in_pattern = small_all[in_table]
    keep = np.setdiff1d(np.arange(len(small_all)), in_table)
    small = small_all[keep]
    real = np.setdiff1d(np.arange(x.shape[1]), small_all)
    c = codes[order]
    n_delayed = int(delayed.sum())
    breaks = np.union1d(np.flatnonzero(np.diff(c)) + 1, [n_delayed] if 0 < n_delayed < len(c)
                        else [])
    seg_start = np.concatenate([[0], breaks, [len(c), len(c) + 1]]).astype(np.int64)
    seg_m = np.concatenate([c[seg_start[:-2]], [0]])
    sizes = [len(c), n_delayed, len(small), len(real), len(seg_start) - 2, len(in_pattern)]
    layout = np.concatenate([sizes, small, real, in_pattern, seg_start, seg_m]).astype(np.int64)
    # centre and scale are indexed by covariate: one entry per covariate, whatever its kind
    floats = np.concatenate([log_t[order], log_s[order][:n_delayed], centre, scale])
    return HazardData(x_small=np.ascontiguousarray(raw_all[:, keep].T.astype(np.int8)),
                      x_real=np.ascontiguousarray(x[order][:, real].T),
                      pattern=np.ascontiguousarray(pattern, dtype=np.int32),
                      table=np.ascontiguousarray(table, dtype=np.int8),
                      floats=floats.astype(float), layout=layout)


class CumulativeHazard(Op):
    """PyTensor Op: (a, beta, alpha, *HazardData arrays) -> C and its gradient.

    The outputs are C, dC/da, dC/dbeta and dC/dalpha; the Op's own gradient is built from the
    last three (first derivatives only).
    """

    __props__ = ()
    n_params = 3

    def make_node(self, *inputs):  # noqa: ANN002, ANN201, D102
        a, beta, alpha, *data = [pt.as_tensor_variable(v) for v in inputs]
        outputs = [pt.dscalar(), pt.dvector(), pt.dvector(), pt.dscalar()]
        return Apply(self, [a, beta, alpha, *data], outputs)

    def perform(self, node, inputs, output_storage):  # noqa: ANN001, ANN201, D102
        a, beta, alpha, *data = inputs
        results = cumulative_hazard_kernel(a, beta, np.asarray(alpha, float), *data)
        for storage, value in zip(output_storage, results, strict=True):
            storage[0] = np.asarray(value)

    def connection_pattern(self, node):  # noqa: ANN001, ANN201, D102
        n_out = len(node.outputs)
        return [[i < self.n_params] * n_out for i in range(len(node.inputs))]

    def pullback(self, inputs, outputs, output_grads):  # noqa: ANN001, ANN201, D102
        g_value = output_grads[0]
        if not all(isinstance(g.type, DisconnectedType) for g in output_grads[1:]):
            return [grad_not_implemented(self, i, v, "second derivatives of the cumulative "
                                         "hazard are not written") for i, v in enumerate(inputs)]
        if isinstance(g_value.type, DisconnectedType):
            return [disconnected_type() for _ in inputs]
        return ([g_value * g for g in outputs[1:]]
                + [disconnected_type() for _ in inputs[self.n_params:]])


cumulative_hazard_op = CumulativeHazard()


SOURCE_VERSION = int(hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:15], 16)
"""This module's source as an integer, part of PyTensor's cache key of every graph with the Op.

PyTensor caches a compiled graph under a key made of its Ops' classes and props; numba links
the kernel's machine code into that graph's cached code and does not notice when the kernel's
source changes. Without this, an edited kernel would keep running its old code from the cache."""


@register_funcify_default_op_cache_key(CumulativeHazard)
def _numba_cumulative_hazard(op, node, **kwargs):  # noqa: ANN001, ANN003, ANN202
    return cumulative_hazard_kernel, SOURCE_VERSION


def shared_inputs(data: HazardData, register: Callable[[pt.TensorVariable], object]
                  ) -> list[pt.TensorVariable]:
    """The :class:`HazardData` arrays as shared variables (dtypes kept), registered.

    Shared rather than constant, so that the compiled graph does not depend on the data:
    PyTensor's compilation cache then serves every register of the same shape of model
    (refits, simulation studies) instead of compiling anew for each.
    """
    out = []
    for f in fields(data):
        var = pytensor.shared(getattr(data, f.name), name=f"hazard_{f.name}")
        register(var)
        out.append(var)
    return out


def cumulative_hazard(a: pt.TensorVariable, beta: pt.TensorVariable, alpha: pt.TensorVariable,
                      data: list[pt.TensorVariable]) -> pt.TensorVariable:
    r"""The cumulative hazard C (module docstring) as a PyTensor scalar.

    Parameters
    ----------
    a : TensorVariable
        Per-municipality part of the linear predictor, :math:`\beta_0 + z_m^\top\gamma + u_m`.
    beta : TensorVariable
        Coefficients of the standardised individual covariates.
    alpha : TensorVariable
        Weibull shape.
    data : list of TensorVariable
        From :func:`shared_inputs`.
    """
    return cumulative_hazard_op(a, beta, alpha, *data)[0]
