r"""The per-episode part of the other baselines' log-likelihoods and its gradient, in one pass.

The model checks (:mod:`munirank.checking.alternatives`) fit log-logistic, log-normal and
piecewise-exponential baselines beside the Weibull model (formulas in
:mod:`munirank.model.build`). As for the Weibull cumulative hazard (:mod:`munirank.model.kernel`),
the event terms reduce to sufficient statistics and everything else is one compiled pass over
the episodes, written here. With :math:`z_i = \eta_i + \alpha\log t_i` (and
:math:`z^s_i = \eta_i + \alpha\log s_i` for a delayed entry), the part the kernel returns,
:math:`R = \sum_i r_i`, is

============================  ===================================================================
baseline                      :math:`r_i`
============================  ===================================================================
``loglogistic``               :math:`-(1 + d_i)\,\mathrm{softplus}(z_i) + \mathrm{softplus}(z^s_i)`
``lognormal``                 :math:`-d_i z_i^2/2 + (1 - d_i)\log\Phi(-z_i) - \log\Phi(-z^s_i)`
``piecewise_exponential``     :math:`-e^{\eta_i}\sum_k e^{\delta_k} E_{ik}`
============================  ===================================================================

with :math:`E_{ik}` the time episode i spends in piece k (entry to exit) and
:math:`\delta_1 = 0`. The rest of each log-likelihood reduces: log-logistic
:math:`D\log\alpha + (\alpha-1)\sum d\log t + \sum d\eta` (the Weibull model's event terms);
log-normal :math:`D(\log\alpha - \tfrac12\log 2\pi) - \sum d\log t`; piecewise
:math:`\sum d\eta + \sum_k D_k\delta_k` (:math:`D_k` events in piece k). Exponential is the
Weibull kernel with :math:`\alpha = 1`.

The gradient: :math:`\partial R/\partial\eta_i` (below) is summed by municipality, by pattern and
by covariate column exactly as in :mod:`munirank.model.kernel` (whose helpers this module
calls), and :math:`\partial R/\partial\alpha = \sum_i \partial r_i/\partial z_i \log t_i +
\partial r_i/\partial z^s_i \log s_i`, :math:`\partial R/\partial\delta_k = -e^{\delta_k}
\sum_i e^{\eta_i} E_{ik}`. With :math:`\sigma` the logistic function and
:math:`M(z) = \varphi(z)/\Phi(-z)` the inverse Mills ratio:
:math:`\partial r/\partial z = -(1+d)\sigma(z)` and :math:`\sigma(z^s)` (log-logistic),
:math:`-d z - (1-d) M(z)` and :math:`M(z^s)` (log-normal). Softplus, logistic,
:math:`\log\Phi(-z)` and :math:`M` come from :mod:`munirank.model.vector_math` (written so
that LLVM vectorises them; :math:`\log\Phi(-z)` by Cody's rational approximations to erfc,
without underflow for large :math:`z`).

Why by hand: PyTensor's graph of these per-episode terms took 0.9-3.2 ms per gradient on
``dk-1999-2005`` against 0.2 ms for the Weibull kernel (one BLAS thread, issue 29), and
sampling is almost all gradients. The same scalar functions give the pointwise
log-likelihood for LOO (:func:`pointwise_rows`), so the sampler and LOO use one
implementation; both are tested against :func:`munirank.model.build.baseline_loglik` and
against PyTensor's gradient of the former per-episode graph.

Kernels that call another module's numba functions are built by factories that close over
:func:`munirank.model.vector_math.sources_key` (numba's cache does not follow callees into
other files), and :data:`SOURCE_VERSION` is also PyTensor's cache key of the Op.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.graph.basic import Apply
from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key

from munirank.model.kernel import (
    BLOCK,
    FASTMATH,
    CumulativeHazard,
    _add_columns,
    _add_patterns,
    _column_sums,
    _pattern_sums,
    _segment_fill,
    _segment_sums,
    _unpack,
    exp,
)
from munirank.model.vector_math import normal_log_sf, softplus, sources_key

FAMILIES = {"piecewise_exponential": 1, "loglogistic": 2, "lognormal": 3}
"""Baselines with a kernel here, and their codes (Weibull and exponential: model.kernel)."""
WEIBULL = 0
"""Code of the Weibull and exponential pointwise log-likelihood (:func:`pointwise_rows`)."""

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)

# helpers carry no cache of their own: they are compiled into the cached entry points


@numba.njit(fastmath=FASTMATH, error_model="numpy")
def _loglogistic_terms(eta, h, log_t, log_s, d, alpha, b0, nb, nd, buf):  # noqa: ANN001, ANN202, PLR0913
    """Block [b0, b0 + nb): h = dr/deta; return (sum r, sum dr/dalpha)."""
    z, sp, sig = buf[0], buf[1], buf[2]
    for k in range(nb):
        z[k] = eta[k] + alpha * log_t[b0 + k]
    softplus(z, nb, sp, sig)
    value = 0.0
    g_alpha = 0.0
    for k in range(nb):
        weight = 1.0 + d[b0 + k]
        value -= weight * sp[k]
        h[k] = -weight * sig[k]
        g_alpha += h[k] * log_t[b0 + k]
    if nd:  # delayed entries: + softplus(z_s)
        for k in range(nd):
            z[k] = eta[k] + alpha * log_s[b0 + k]
        softplus(z, nd, sp, sig)
        for k in range(nd):
            value += sp[k]
            h[k] += sig[k]
            g_alpha += sig[k] * log_s[b0 + k]
    return value, g_alpha


@numba.njit(fastmath=FASTMATH, error_model="numpy")
def _lognormal_terms(eta, h, log_t, log_s, d, alpha, b0, nb, nd, buf, index):  # noqa: ANN001, ANN202, PLR0913
    """Block [b0, b0 + nb): h = dr/deta; return (sum r, sum dr/dalpha).

    log Phi(-z) and the Mills ratio at the exit are needed for the censored episodes only
    (an event's term is -z^2/2): their positions are gathered without branches into
    ``index`` and the survival function runs on them alone (dk-1999-2005, 35 % events:
    a gradient 0.35 against 0.40 ms measured on the sampler's draws).
    """
    z, lq, mills, zc = buf[0], buf[1], buf[2], buf[3]
    nc = 0
    value = 0.0
    for k in range(nb):
        z[k] = eta[k] + alpha * log_t[b0 + k]
        dk = d[b0 + k]
        value -= 0.5 * dk * z[k] * z[k]
        h[k] = -dk * z[k]
    for k in range(nb):
        index[nc] = k
        nc += d[b0 + k] == 0.0
    for j in range(nc):
        zc[j] = z[index[j]]
    normal_log_sf(zc, nc, lq, mills, buf[4:])
    for j in range(nc):
        value += lq[j]
        h[index[j]] -= mills[j]
    g_alpha = 0.0
    for k in range(nb):
        g_alpha += h[k] * log_t[b0 + k]
    if nd:  # delayed entries: - log Phi(-z_s)
        for k in range(nd):
            z[k] = eta[k] + alpha * log_s[b0 + k]
        normal_log_sf(z, nd, lq, mills, buf[4:])
        for k in range(nd):
            value -= lq[k]
            h[k] += mills[k]
            g_alpha += mills[k] * log_s[b0 + k]
    return value, g_alpha


@numba.njit(fastmath=FASTMATH, error_model="numpy")
def _piecewise_terms(eta, h, rate, exposure, weights, g_w, b0, nb):  # noqa: ANN001, ANN202, PLR0913
    """Block [b0, b0 + nb): h = dr/deta = -e^eta B; g_w[k] -= sum e^eta E_k; return sum r."""
    for k in range(nb):
        rate[k] = exp(eta[k])
        h[k] = 0.0
    for j in range(exposure.shape[0]):
        row = exposure[j, b0:b0 + nb]
        wj = weights[j]
        acc = 0.0
        for k in range(nb):
            term = rate[k] * row[k]
            acc += term
            h[k] -= wj * term
        g_w[j] -= acc
    value = 0.0
    for k in range(nb):
        value += h[k]
    return value


@numba.njit(fastmath=FASTMATH, error_model="numpy")
def _family_blocks(family, a, w_small, w_real, c, theta, x_small, x_real, pattern, log_t,  # noqa: ANN001, ANN202, PLR0913
                   log_s, seg_start, seg_m, extra):
    """R, dR/da, dR/dw_small, dR/dw_real, dR/dc and dR/dtheta, block by block."""
    n = log_t.shape[0]
    n_delayed = log_s.shape[0]
    g_a = np.zeros(a.shape[0])
    g_small = np.zeros(x_small.shape[0])
    g_real = np.zeros(x_real.shape[0])
    g_c = np.zeros(c.shape[0])
    patterns = c.shape[0] > 0
    g_shape = np.zeros(extra.shape[0] if family == 1 else 1)
    weights = np.ones(extra.shape[0] if family == 1 else 1)
    if family == 1:
        weights[1:] = np.exp(theta)
    eta = np.empty(BLOCK)
    h = np.empty(BLOCK)
    buf = np.empty((7, BLOCK))
    index = np.empty(BLOCK, np.int64)
    value = 0.0
    seg = 0
    for b0 in range(0, n, BLOCK):
        b1 = min(b0 + BLOCK, n)
        nb = b1 - b0
        nd = min(max(n_delayed - b0, 0), nb)
        _segment_fill(eta, a, seg_start, seg_m, seg, b0, b1)
        if patterns:
            _add_patterns(eta, c, pattern, b0, b1)
        _add_columns(eta, x_small, w_small, b0, b1)
        _add_columns(eta, x_real, w_real, b0, b1)
        if family == 1:
            value += _piecewise_terms(eta, h, buf[0], extra, weights, g_shape, b0, nb)
        elif family == 2:
            v, g = _loglogistic_terms(eta, h, log_t, log_s, extra[0], theta[0], b0, nb, nd,
                                      buf)
            value += v
            g_shape[0] += g
        else:
            v, g = _lognormal_terms(eta, h, log_t, log_s, extra[0], theta[0], b0, nb, nd, buf,
                                    index)
            value += v
            g_shape[0] += g
        seg = _segment_sums(h, g_a, seg_start, seg_m, seg, b0, b1)
        if patterns:
            _pattern_sums(g_c, h, pattern, b0, b1)
        _column_sums(g_small, h, x_small, b0, b1)
        _column_sums(g_real, h, x_real, b0, b1)
    # piecewise: dR/ddelta_k = e^delta_k dR/dw_k, for the pieces after the first
    g_theta = g_shape[1:] * weights[1:] if family == 1 else g_shape
    return value, g_a, g_small, g_real, g_c, g_theta


@numba.njit(fastmath=FASTMATH, error_model="numpy")
def _family_loglik(family, a, beta, theta, x_small, x_real, pattern, table, floats, layout,  # noqa: ANN001, ANN202, PLR0913
                   extra):
    """R and its gradient; the covariate layout and chain rule of the Weibull kernel."""
    small, real, in_pattern, seg_start, seg_m, log_t, log_s, centre, scale = _unpack(
        floats, layout)
    w_small = beta[small] / scale[small]
    w_pattern = beta[in_pattern] / scale[in_pattern]
    offset = -(w_small * centre[small]).sum() - (w_pattern * centre[in_pattern]).sum()
    c = np.zeros(table.shape[1])
    _add_columns(c, table, w_pattern, 0, c.shape[0])
    value, g_a, g_small, g_real, g_c, g_theta = _family_blocks(
        family, a + offset, w_small, beta[real], c, theta, x_small, x_real, pattern, log_t,
        log_s, seg_start, seg_m, extra)
    total = g_a.sum()  # dR/d(offset): the offset is in every episode's eta
    g_beta = np.zeros(beta.shape[0])
    g_beta[small] = (g_small - total * centre[small]) / scale[small]
    g_pattern = np.zeros(table.shape[0])
    _column_sums(g_pattern, g_c, table, 0, g_c.shape[0])
    g_beta[in_pattern] = (g_pattern - total * centre[in_pattern]) / scale[in_pattern]
    g_beta[real] = g_real
    return np.array(value), g_a, g_beta, g_theta


SOURCE_VERSION = sources_key(__name__, "munirank.model.kernel", "munirank.model.vector_math")
"""The sources this module's kernels are compiled from, as an integer (module docstring)."""


def _compile_kernel(family: int, key: int):  # noqa: ANN202
    @numba.njit(fastmath=FASTMATH, error_model="numpy", cache=True)
    def kernel(a, beta, theta, x_small, x_real, pattern, table, floats, layout, extra):  # noqa: ANN001, ANN202, PLR0913
        _ = key  # part of numba's cache index (closure variables are): see the docstring
        return _family_loglik(family, a, beta, theta, x_small, x_real, pattern, table,
                              floats, layout, extra)

    return kernel


KERNELS = {name: _compile_kernel(code, SOURCE_VERSION) for name, code in FAMILIES.items()}
"""The compiled kernel of each baseline: (a, beta, theta, *data) -> (R, dR/da, dR/dbeta,
dR/dtheta), with ``theta`` = (alpha,) or the pieces' log hazards after the first."""


class FamilyLoglik(CumulativeHazard):
    """PyTensor Op: (a, beta, theta, *data) -> R and its gradient, for one baseline.

    Outputs R, dR/da, dR/dbeta and dR/dtheta; the gradient (first derivatives only) as for
    :class:`munirank.model.kernel.CumulativeHazard`.
    """

    __props__ = ("family",)

    def __init__(self, family: str):
        self.family = family

    def make_node(self, *inputs):  # noqa: ANN002, ANN201, D102
        a, beta, theta, *data = [pt.as_tensor_variable(v) for v in inputs]
        outputs = [pt.dscalar(), pt.dvector(), pt.dvector(), pt.dvector()]
        return Apply(self, [a, beta, theta, *data], outputs)

    def perform(self, node, inputs, output_storage):  # noqa: ANN001, ANN201, D102
        results = KERNELS[self.family](*inputs)
        for storage, value in zip(output_storage, results, strict=True):
            storage[0] = np.asarray(value)


@register_funcify_default_op_cache_key(FamilyLoglik)
def _numba_family_loglik(op, node, **kwargs):  # noqa: ANN001, ANN003, ANN202
    return KERNELS[op.family], SOURCE_VERSION


def family_extra(baseline: str, order: np.ndarray, d: np.ndarray,
                 exposure: np.ndarray | None = None) -> np.ndarray:
    """The kernel's per-episode data besides :class:`munirank.model.kernel.HazardData`.

    Parameters
    ----------
    baseline : str
        One of :data:`FAMILIES`.
    order : numpy.ndarray
        The kernel's order of the episodes (:func:`munirank.model.kernel.episode_order`).
    d : numpy.ndarray
        Event indicator per episode.
    exposure : numpy.ndarray, optional
        (episodes, pieces) time in each piece (piecewise exponential).

    Returns
    -------
    numpy.ndarray
        (pieces, episodes) exposure, or (1, episodes) event indicator, float64, kernel order.
    """
    if baseline == "piecewise_exponential":
        return np.ascontiguousarray(np.asarray(exposure, float)[order].T)
    return np.ascontiguousarray(np.asarray(d, float)[order][None, :])


def family_loglik(baseline: str, a: pt.TensorVariable, beta: pt.TensorVariable,
                  theta: pt.TensorVariable, data: list[pt.TensorVariable],
                  extra: np.ndarray, register: object) -> pt.TensorVariable:
    r"""R (module docstring) as a PyTensor scalar, ``extra`` registered as shared data.

    Parameters
    ----------
    baseline : str
        One of :data:`FAMILIES`.
    a : TensorVariable
        Per-municipality part of the linear predictor, :math:`\beta_0 + z_m^\top\gamma + u_m`.
    beta : TensorVariable
        Coefficients of the standardised individual covariates.
    theta : TensorVariable
        Vector: (alpha,) or the pieces' log hazards after the first.
    data : list of TensorVariable
        :func:`munirank.model.kernel.shared_inputs` of the episodes.
    extra : numpy.ndarray
        :func:`family_extra`.
    register : callable
        The model's ``register_data_var``.
    """
    shared = pytensor.shared(extra, name=f"{baseline}_extra")
    register(shared)
    return FamilyLoglik(baseline)(a, beta, theta, *data, shared)[0]


@numba.njit(fastmath=FASTMATH, error_model="numpy")
def _pointwise_row(family, out, eta, log_t, log_s, d, alpha, log_alpha, integral, lp_event,  # noqa: ANN001, ANN202, PLR0913
                   buf):
    """One episode's log-likelihood at every draw (model time scale; module docstrings).

    Piecewise: ``integral`` = sum_k e^delta_k E_k and ``lp_event`` = delta of the exit's
    piece, per draw.
    """
    n = eta.shape[0]
    delayed = log_s > -np.inf
    if family == WEIBULL:
        for s in range(n):
            hs = exp(eta[s] + alpha[s] * log_s) if delayed else 0.0
            out[s] = (d * (log_alpha[s] + (alpha[s] - 1.0) * log_t + eta[s])
                      - (exp(eta[s] + alpha[s] * log_t) - hs))
        return
    if family == 1:
        for s in range(n):
            out[s] = d * (eta[s] + lp_event[s]) - exp(eta[s]) * integral[s]
        return
    z, a, b = buf[0], buf[1], buf[2]
    for s in range(n):
        z[s] = eta[s] + alpha[s] * log_t
    if family == 2:
        softplus(z, n, a, b)
        for s in range(n):
            out[s] = d * (log_alpha[s] - log_t + z[s]) - (1.0 + d) * a[s]
    else:
        if d != 1.0:  # an event's term needs no survival function at its exit
            normal_log_sf(z, n, a, b, buf[3:])
        else:
            a[:n] = 0.0
        for s in range(n):
            out[s] = (d * (log_alpha[s] - log_t - 0.5 * z[s] * z[s] - _LOG_SQRT_2PI)
                      + (1.0 - d) * a[s])
    if delayed:
        for s in range(n):
            z[s] = eta[s] + alpha[s] * log_s
        if family == 2:
            softplus(z, n, a, b)
            for s in range(n):
                out[s] += a[s]
        else:
            normal_log_sf(z, n, a, b, buf[3:])
            for s in range(n):
                out[s] -= a[s]


@numba.njit(fastmath=FASTMATH, error_model="numpy")
def episode_row(family, out, eta, i, log_t, log_s, d, alpha, log_alpha, rates, exposure,  # noqa: ANN001, ANN201, PLR0913
                log_piece, piece, buf):
    """Episode i's log-likelihood at every draw into ``out`` (:func:`_pointwise_row`).

    Piecewise: its integral of the hazard from ``rates`` (draws x pieces) and ``exposure``
    first. ``buf``: (8, draws) scratch. Used by :func:`pointwise_rows` and by LOO's pass
    (:mod:`munirank.checking.loo`).
    """
    integral = buf[6]
    lp_event = buf[7]
    if family == 1:
        for s in range(eta.shape[0]):
            acc = 0.0
            for j in range(rates.shape[1]):
                acc += rates[s, j] * exposure[i, j]
            integral[s] = acc
            lp_event[s] = log_piece[s, piece[i]]
    _pointwise_row(family, out, eta, log_t[i], log_s[i], d[i], alpha, log_alpha, integral,
                   lp_event, buf)


def _compile_rows(key: int):  # noqa: ANN202
    @numba.njit(fastmath=FASTMATH, error_model="numpy", cache=True, parallel=True)
    def rows(family, eta, log_t, log_s, d, alpha, piece, exposure, log_piece, out):  # noqa: ANN001, ANN202, PLR0913
        _ = key
        n_ep, n_draw = eta.shape
        rates = np.exp(log_piece)  # (draws, pieces), the first piece's 0 included
        log_alpha = np.log(alpha)
        for i in numba.prange(n_ep):
            buf = np.empty((8, n_draw))
            episode_row(family, out[i], eta[i], i, log_t, log_s, d, alpha, log_alpha, rates,
                        exposure, log_piece, piece, buf)
        return out

    return rows


_rows = _compile_rows(SOURCE_VERSION)


def pointwise_rows(baseline: str, eta: np.ndarray, *, log_t: np.ndarray, log_s: np.ndarray,
                   d: np.ndarray, alpha: np.ndarray | None = None,
                   piece: np.ndarray | None = None, exposure: np.ndarray | None = None,
                   log_piece: np.ndarray | None = None) -> np.ndarray:
    """Pointwise log-likelihood (model time scale) of a block of episodes, episodes x draws.

    Parameters
    ----------
    baseline : str
        Any of :data:`munirank.input.spec.BASELINES`.
    eta : numpy.ndarray
        (episodes, draws) linear predictor.
    log_t, log_s, d : numpy.ndarray
        Log exit time, log entry time (``-inf``: no delayed entry), event indicator.
    alpha : numpy.ndarray, optional
        (draws,) shape (not for exponential and piecewise exponential).
    piece : numpy.ndarray, optional
        Piece of each exit time (piecewise exponential).
    exposure : numpy.ndarray, optional
        (episodes, pieces) time in each piece (piecewise exponential).
    log_piece : numpy.ndarray, optional
        (draws, pieces) log hazard of each piece relative to the first (its column 0).

    Returns
    -------
    numpy.ndarray
        (episodes, draws): each episode's draws contiguous, as PSIS reads them.
    """
    n_ep, n_draw = eta.shape
    family = FAMILIES.get(baseline, WEIBULL)
    if alpha is None:
        alpha = np.ones(n_draw)
    if family != 1:  # placeholders of the right types for the unused arguments
        piece, exposure, log_piece = (np.zeros(n_ep, np.int64), np.zeros((n_ep, 1)),
                                      np.zeros((n_draw, 1)))
    out = np.empty((n_ep, n_draw))
    return _rows(family, np.ascontiguousarray(eta, float), np.asarray(log_t, float),
                 np.asarray(log_s, float), np.asarray(d, float),
                 np.ascontiguousarray(alpha, float), np.asarray(piece, np.int64),
                 np.ascontiguousarray(exposure, float), np.ascontiguousarray(log_piece, float),
                 out)
