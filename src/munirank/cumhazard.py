r"""The Weibull cumulative hazard of all episodes and its gradient, in one pass.

The log-likelihood (:mod:`munirank.model`) has one term per episode that does not reduce to
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
block by block while the block is in cache, which makes the gradient of ``dk-1999-2005`` 2.5x
and that of a million episodes 4x cheaper (measured; see ``munirank bench``). Nothing is
approximated:

- covariates whose un-standardised values are small integers (dummies, counts, ages in
  years) are stored as their raw ``int8`` values, an eighth of the memory of the
  standardised float64 column; the model multiplies them by ``beta / scale`` and moves
  ``-centre * beta / scale`` into the intercept, which is the same linear predictor;
  other covariates stay standardised float64;
- episodes are reordered (delayed entries first, then by municipality), which changes no sum;
- :func:`exp` is a vectorisable exponential accurate to 1 ulp (measured over
  :math:`[-745, 709]` against ``numpy.exp``), because numba calls the scalar libm ``exp``,
  which LLVM cannot vectorise without Intel's SVML.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np
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
_FAST = {"arcp", "contract", "afn", "reassoc", "nsz"}

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
    degree 13 (truncation error below 1e-17); :math:`2^k` built from its bits. Overflow
    gives ``inf``, :math:`x < -708.39` gives 0 (no subnormals), NaN stays NaN.
    """
    x = min(max(x0, -708.0), 709.0)
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
    y = p * _from_bits((_bits(kd) - _bits(_SHIFT) + 1023) << 52)
    y = np.inf if x0 > 709.78 else y
    return 0.0 if x0 < -708.39 else y


@numba.njit(fastmath=_FAST, cache=True)
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


@numba.njit(fastmath=_FAST, cache=True)
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


@numba.njit(fastmath=_FAST, cache=True)
def _add_columns(eta, x, w, b0, b1):  # noqa: ANN001, ANN202
    """eta[:nb] += x[:, b0:b1].T @ w, one column at a time (contiguous, vectorised)."""
    for j in range(x.shape[0]):
        wj = w[j]
        xj = x[j, b0:b1]
        for k in range(b1 - b0):
            eta[k] += xj[k] * wj


@numba.njit(fastmath=_FAST, cache=True)
def _column_sums(g, h, x, b0, b1):  # noqa: ANN001, ANN202
    """Add x[:, b0:b1] @ h[:nb] to g."""
    for j in range(x.shape[0]):
        xj = x[j, b0:b1]
        acc = 0.0
        for k in range(b1 - b0):
            acc += h[k] * xj[k]
        g[j] += acc


@numba.njit(fastmath=_FAST, cache=True)
def _terms(eta, h, log_time, alpha, sign, nb):  # noqa: ANN001, ANN202
    """h[:nb] += sign * exp(eta + alpha log_time); return sum of those terms times log_time."""
    acc = 0.0
    for k in range(nb):
        e = exp(eta[k] + alpha * log_time[k])
        h[k] += sign * e
        acc += e * log_time[k]
    return sign * acc


@numba.njit(fastmath=_FAST, cache=True)
def cumulative_hazard_kernel(a, w_small, w_real, alpha, x_small, x_real, log_t, log_s,
                             seg_start, seg_m):  # noqa: ANN001, ANN201
    """Value and gradient of the cumulative hazard (module docstring), one pass per block.

    Episodes are in :class:`HazardData` order: the first ``len(log_s)`` are the delayed
    entries; ``seg_start``/``seg_m`` are the runs of one municipality (with a sentinel).
    Returns ``(C, dC/da, dC/dw_small, dC/dw_real, dC/dalpha)``.
    """
    n = log_t.shape[0]
    n_delayed = log_s.shape[0]
    alpha = alpha.item()
    g_a = np.zeros(a.shape[0])
    g_small = np.zeros(x_small.shape[0])
    g_real = np.zeros(x_real.shape[0])
    g_alpha = 0.0
    eta = np.empty(BLOCK)
    h = np.empty(BLOCK)
    seg = 0
    for b0 in range(0, n, BLOCK):
        b1 = min(b0 + BLOCK, n)
        nb = b1 - b0
        _segment_fill(eta, a, seg_start, seg_m, seg, b0, b1)
        _add_columns(eta, x_small, w_small, b0, b1)
        _add_columns(eta, x_real, w_real, b0, b1)
        h[:nb] = 0.0
        g_alpha += _terms(eta, h, log_t[b0:b1], alpha, 1.0, nb)
        nd = min(max(n_delayed - b0, 0), nb)
        if nd:
            g_alpha += _terms(eta, h, log_s[b0:b0 + nd], alpha, -1.0, nd)
        seg = _segment_sums(h, g_a, seg_start, seg_m, seg, b0, b1)
        _column_sums(g_small, h, x_small, b0, b1)
        _column_sums(g_real, h, x_real, b0, b1)
    return np.array(g_a.sum()), g_a, g_small, g_real, np.array(g_alpha)


@dataclass(frozen=True)
class HazardData:
    """The episodes as the kernel reads them (built once per model by :func:`hazard_data`).

    Attributes
    ----------
    x_small : numpy.ndarray
        (covariates, episodes) int8: raw values of the small-integer covariates ``small``.
    x_real : numpy.ndarray
        (covariates, episodes) float64: standardised values of the covariates ``real``.
    log_t, log_s : numpy.ndarray
        Log exit time (all episodes) and log entry time (the delayed entries, which come first).
    seg_start, seg_m : numpy.ndarray
        Start of each run of one municipality's episodes and its code; a sentinel at the end.
    small, real : numpy.ndarray
        Covariate indices (into the model's ``beta``) of the two blocks.
    centre, scale : numpy.ndarray
        Centre and scale of the ``small`` covariates (their standardisation).
    """

    x_small: np.ndarray
    x_real: np.ndarray
    log_t: np.ndarray
    log_s: np.ndarray
    seg_start: np.ndarray
    seg_m: np.ndarray
    small: np.ndarray
    real: np.ndarray
    centre: np.ndarray
    scale: np.ndarray


def _small_integer_columns(x: np.ndarray, centre: np.ndarray,
                           scale: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of columns whose raw values are integers in int8 range, and those raw values."""
    raw = x * scale + centre
    rounded = np.rint(raw)
    exact = np.abs(raw - rounded) <= 1e-9 * np.maximum(1.0, np.abs(rounded))
    fits = (rounded >= SMALL_INT[0]) & (rounded <= SMALL_INT[1])
    small = np.flatnonzero((exact & fits).all(axis=0))
    return small, rounded[:, small]


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
    order = np.lexsort((codes, ~delayed))  # delayed first, then by municipality
    small, raw = _small_integer_columns(x, centre, scale)
    real = np.setdiff1d(np.arange(x.shape[1]), small)
    c = codes[order]
    n_delayed = int(delayed.sum())
    breaks = np.union1d(np.flatnonzero(np.diff(c)) + 1, [n_delayed] if 0 < n_delayed < len(c)
                        else [])
    seg_start = np.concatenate([[0], breaks, [len(c), len(c) + 1]]).astype(np.int64)
    seg_m = np.concatenate([c[seg_start[:-2]], [0]]).astype(np.int64)
    return HazardData(
        x_small=np.ascontiguousarray(raw[order].T.astype(np.int8)),
        x_real=np.ascontiguousarray(x[order][:, real].T),
        log_t=np.ascontiguousarray(log_t[order]),
        log_s=np.ascontiguousarray(log_s[order][:n_delayed]),
        seg_start=seg_start, seg_m=seg_m, small=small, real=real,
        centre=centre[small], scale=scale[small])


class CumulativeHazard(Op):
    """PyTensor Op: (a, w_small, w_real, alpha, data...) -> (C and its four derivatives).

    The outputs are C, dC/da, dC/dw_small, dC/dw_real and dC/dalpha; the Op's gradient is
    built from the last four (first derivatives only).
    """

    __props__ = ()
    n_params = 4

    def make_node(self, *inputs):  # noqa: ANN002, ANN201, D102
        a, w_small, w_real, alpha, *data = [pt.as_tensor_variable(v) for v in inputs]
        outputs = [pt.dscalar(), pt.dvector(), pt.dvector(), pt.dvector(), pt.dscalar()]
        return Apply(self, [a, w_small, w_real, alpha, *data], outputs)

    def perform(self, node, inputs, output_storage):  # noqa: ANN001, ANN201, D102
        a, w_small, w_real, alpha, *data = inputs
        results = cumulative_hazard_kernel(a, w_small, w_real, np.asarray(alpha, float), *data)
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


@register_funcify_default_op_cache_key(CumulativeHazard)
def _numba_cumulative_hazard(op, node, **kwargs):  # noqa: ANN001, ANN003, ANN202
    return cumulative_hazard_kernel


def shared_inputs(data: HazardData,
                  register: Callable[[pt.TensorVariable], object]) -> list[pt.TensorVariable]:
    """The kernel's data as shared variables (their dtypes kept), registered with ``register``."""
    names = ("x_small", "x_real", "log_t", "log_s", "seg_start", "seg_m")
    out = []
    for name in names:
        var = pytensor.shared(getattr(data, name), name=f"hazard_{name}")
        register(var)
        out.append(var)
    return out


def cumulative_hazard(a: pt.TensorVariable, beta: pt.TensorVariable, alpha: pt.TensorVariable,
                      data: HazardData, data_vars: list[pt.TensorVariable]) -> pt.TensorVariable:
    r"""The cumulative hazard C (module docstring) as a PyTensor scalar.

    Parameters
    ----------
    a : TensorVariable
        Per-municipality part of the linear predictor, :math:`\beta_0 + z_m^\top\gamma + u_m`.
    beta : TensorVariable
        Coefficients of the standardised individual covariates.
    alpha : TensorVariable
        Weibull shape.
    data : HazardData
        From :func:`hazard_data`.
    data_vars : list of TensorVariable
        From :func:`shared_inputs`.
    """
    w_small = beta[data.small] / data.scale
    offset = -pt.sum(w_small * data.centre)
    outputs = cumulative_hazard_op(a + offset, w_small, beta[data.real], alpha, *data_vars)
    return outputs[0]
