r"""Effect measures, computed draw by draw (DESIGN.md section 3).

The restricted mean survival time to the horizon :math:`\tau` of a Weibull PH episode with
rate :math:`\lambda = e^\eta` on time scale :math:`T` (months per model unit) is

.. math::

    \mathrm{RMST}_\tau = T \int_0^{\tau/T} e^{-\lambda u^\alpha}\,du
        = T\,\Gamma(1 + 1/\alpha)\,\lambda^{-1/\alpha}\,
          P\!\left(1/\alpha,\ \lambda (\tau/T)^\alpha\right)

with :math:`P` the regularised lower incomplete gamma function. Per draw and municipality,
observed_m = mean of RMST over m's episodes with the municipality effect :math:`u_m`,
expected_m = the same with :math:`u_m = 0` (an average municipality with the same people and
the same municipal conditions), effect_months_m = observed_m - expected_m (negative = faster).
Hazard ratio :math:`e^{u_m}`, time ratio :math:`e^{-u_m/\alpha}`.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import xarray as xr
from scipy import special

from munirank.input.episodes import as_codes
from munirank.model.build import time_scale
from munirank.model.kernel import FASTMATH
from munirank.model.kernel import exp as fast_exp

_CHUNK = 256  # draws per block: bounds memory at CHUNK x episodes floats
_GRID0, _GRID1, _NODES = -25.0, 7.0, 513  # log x nodes of the interpolation table
_H = (_GRID1 - _GRID0) / (_NODES - 1)


def _gamma_table(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact P(a, x) and dP/dlog x = exp(a log x - x - log Gamma(a)) on the log-x nodes."""
    grid = np.linspace(_GRID0, _GRID1, _NODES)
    nodes = np.exp(grid)
    a = np.asarray(a, float).reshape(-1, 1)
    value = special.gammainc(a, nodes)
    slope = np.exp(a * grid - nodes - special.gammaln(a)) * _H
    return value, slope


@numba.njit(cache=True, inline="always")
def _p_interpolated(logx: float, value: np.ndarray,
                    slope: np.ndarray) -> float:  # pragma: no cover - compiled
    """Cubic Hermite interpolation of P(a, x) in log x, clamped to the table's nodes.

    Beyond the last node P = 1 to double precision (x > e^7 for the shapes of these models)
    and the clamped interpolation returns the last node's value, 1.0. Branch-free, so that
    LLVM vectorises the loops that call it.
    """
    pos = min(max((logx - _GRID0) / _H, 0.0), _NODES - 1 - 1e-9)
    i = np.int32(pos)
    s = pos - i
    s2 = s * s
    s3 = s2 * s
    return ((2 * s3 - 3 * s2 + 1) * value[i] + (s3 - 2 * s2 + s) * slope[i]
            + (-2 * s3 + 3 * s2) * value[i + 1] + (s3 - s2) * slope[i + 1])


@numba.njit(cache=True, inline="always")
def _hermite_coefficients(value: np.ndarray,
                          slope: np.ndarray) -> np.ndarray:  # pragma: no cover - compiled
    """Each interval's cubic of :func:`_p_interpolated` as coefficients of 1, s, s^2, s^3."""
    coef = np.zeros((_NODES, 4))
    for i in range(_NODES - 1):
        v0, v1, d0, d1 = value[i], value[i + 1], slope[i], slope[i + 1]
        coef[i, 0] = v0
        coef[i, 1] = d0
        coef[i, 2] = -3 * v0 - 2 * d0 + 3 * v1 - d1
        coef[i, 3] = 2 * v0 + d0 - 2 * v1 + d1
    return coef


@numba.njit(cache=True, inline="always")
def _p_horner(logx: float, coef: np.ndarray) -> float:  # pragma: no cover - compiled
    """:func:`_p_interpolated` in Horner form, from :func:`_hermite_coefficients` (to 1e-13)."""
    pos = min(max((logx - _GRID0) / _H, 0.0), _NODES - 1 - 1e-9)
    i = np.int32(pos)
    s = pos - i
    return coef[i, 0] + s * (coef[i, 1] + s * (coef[i, 2] + s * coef[i, 3]))


@numba.njit(cache=True, inline="always")
def _below_grid(logx: float, a: float, lg_a1: float) -> float:  # pragma: no cover - compiled
    """x^a / Gamma(a + 1), the leading term of P(a, x) for x below the table (x < e^-25)."""
    return fast_exp(a * min(logx, _GRID0) - lg_a1)


@numba.njit(cache=True, inline="always")
def _blend(logx: float, p: float, low: float) -> float:  # pragma: no cover - compiled
    """``low`` (:func:`_below_grid`) below the table, else ``p``: selected without a branch."""
    return p + np.float64(logx < _GRID0) * (low - p)


@numba.njit(cache=True, inline="always")
def _p_from_table(logx: float, a: float, lg_a1: float, value: np.ndarray,
                  slope: np.ndarray) -> float:  # pragma: no cover - compiled
    """P(a, x): the interpolation, below the grid x^a / Gamma(a+1) (blended, not branched)."""
    return _blend(logx, _p_interpolated(logx, value, slope), _below_grid(logx, a, lg_a1))


@numba.njit(cache=True, parallel=True)
def _p_kernel(logx, a, lg_a1, value, slope):  # pragma: no cover - compiled
    out = np.empty(logx.shape)
    for r in numba.prange(logx.shape[0]):
        for j in range(logx.shape[1]):
            out[r, j] = _p_from_table(logx[r, j], a[r], lg_a1[r], value[r], slope[r])
    return out


def regularized_lower_gamma(a: np.ndarray, x: np.ndarray) -> np.ndarray:
    """P(a, x) for one ``a`` per row and many ``x`` per row, by cubic Hermite interpolation.

    scipy's ``gammainc`` costs ~300 ns a call, and the duration effects need it for every
    draw times every episode (~2 x 10^8 calls on a national register). Per row (draw) this
    tabulates the exact ``scipy.special.gammainc`` and its exact derivative on 513 nodes of
    log x in [-25, 7] and interpolates with cubic Hermite polynomials (absolute error below
    1e-6, tested against scipy). Below the grid P(a, x) = x^a / Gamma(a + 1) to relative error
    x; above it P = 1 to double precision for the shapes that occur (a < 10). Written by hand
    (numba) because no library offers a vectorised P(a, x) with a shared ``a``.

    Parameters
    ----------
    a : numpy.ndarray
        Shape (n,) or (n, 1), positive.
    x : numpy.ndarray
        Shape (n, m), non-negative.

    Returns
    -------
    numpy.ndarray
        Shape (n, m).
    """
    a = np.asarray(a, float).ravel()
    value, slope = _gamma_table(a)
    with np.errstate(divide="ignore"):
        logx = np.log(np.asarray(x, float))
    return _p_kernel(logx, a, special.gammaln(a + 1.0), value, slope)


def rmst_weibull(eta: np.ndarray | float, alpha: np.ndarray | float, horizon: float,
                 scale: float = 1.0) -> np.ndarray:
    """Restricted mean survival time of a Weibull PH model (exact, scipy), in ``scale`` units.

    Parameters
    ----------
    eta : numpy.ndarray or float
        Log rate on the model's time scale.
    alpha : float or numpy.ndarray
        Weibull shape (broadcasts against ``eta``).
    horizon : float
        Restriction time, in the same units as ``scale`` (months).
    scale : float
        Units per model time unit.

    Returns
    -------
    numpy.ndarray
        RMST, same shape as the broadcast of ``eta`` and ``alpha``.

    Examples
    --------
    >>> round(float(rmst_weibull(np.log(1 / 12), 1.0, 48.0)), 3)  # exponential, mean 12
    11.78
    """
    eta, alpha = np.asarray(eta, float), np.asarray(alpha, float)
    inv = 1.0 / alpha
    p = special.gammainc(inv, np.exp(eta) * (horizon / scale) ** alpha)
    return scale * special.gamma(1.0 + inv) * np.exp(-eta * inv) * p


_BLOCK = 256  # episodes per block of the effect sums (their buffers stay in L1)


@numba.njit(cache=True, parallel=True, fastmath=FASTMATH)
def _rmst_sums(alpha, base, muni, u, starts, value, slope, logc, scale,  # pragma: no cover
               weight=None):
    """Per draw s and municipality m: sums over m's episodes of RMST with and without u_m.

    ``weight`` (sorted like the episodes): each term times its row's weight, the piece's
    share of its episode (:mod:`munirank.posterior.cells`); None compiles without it.

    Episodes are sorted by municipality (m's are ``starts[m]:starts[m + 1]``). log x =
    eta + alpha log c, so neither exp(eta) nor log x is formed; RMST = scale
    Gamma(1 + 1/alpha) exp(-eta / alpha) P(1/alpha, x), and exp(-(eta + u_m) / alpha) =
    exp(-eta / alpha) exp(-u_m / alpha). Each block of episodes takes two passes, the
    exponentials first and then the table look-ups, because LLVM vectorises each pass
    alone but not the two together (measured: 6.8 against 12.7 ns per episode and draw,
    30 ns before with branches and libm's exp). The interpolation's cubics are expanded once
    per draw into Horner form (dk-1999-2005, one thread: 1.46 against 1.91 s of CPU).
    """
    n_draw = base.shape[0]
    n_muni = muni.shape[1]
    observed = np.zeros((n_draw, n_muni))
    expected = np.zeros((n_draw, n_muni))
    for s in numba.prange(n_draw):
        al = alpha[s]
        a = 1.0 / al
        lg_a1 = math.lgamma(a + 1.0)
        g = scale * math.exp(lg_a1)
        shift = al * logc
        coef = _hermite_coefficients(value[s], slope[s])
        lx0 = np.empty(_BLOCK)
        r0 = np.empty(_BLOCK)
        low0 = np.empty(_BLOCK)
        low1 = np.empty(_BLOCK)
        for m in range(n_muni):
            mm = muni[s, m] + shift
            um = u[s, m]
            damp = math.exp(-um * a)
            obs = 0.0
            exp_ = 0.0
            for b0 in range(starts[m], starts[m + 1], _BLOCK):
                nb = min(_BLOCK, starts[m + 1] - b0)
                for k in range(nb):  # exponentials
                    lx = base[s, b0 + k] + mm
                    lx0[k] = lx
                    r0[k] = g * fast_exp(-(lx - shift) * a)
                    if weight is not None:
                        r0[k] *= weight[b0 + k]
                    low0[k] = _below_grid(lx, a, lg_a1)
                    low1[k] = _below_grid(lx + um, a, lg_a1)
                for k in range(nb):  # table look-ups
                    lx = lx0[k]
                    p0 = _blend(lx, _p_horner(lx, coef), low0[k])
                    p1 = _blend(lx + um, _p_horner(lx + um, coef), low1[k])
                    exp_ += r0[k] * p0
                    obs += r0[k] * p1
            observed[s, m] = obs * damp
            expected[s, m] = exp_
    return observed, expected


def duration_effects(posterior: xr.Dataset, episodes: xr.Dataset) -> xr.Dataset:
    """Observed, expected and effect months per draw and municipality.

    Parameters
    ----------
    posterior : xarray.Dataset
        Draws of ``alpha``, ``beta0``, ``beta``, ``gamma``, ``u`` with dims (chain, draw, ...).
    episodes : xarray.Dataset
        The episodes the model was fitted to.

    Returns
    -------
    xarray.Dataset
        ``observed_months``, ``expected_months``, ``effect_months`` with dims
        (chain, draw, municipality), plus ``log_hr``, ``hazard_ratio`` and ``time_ratio``.
    """
    if "cell" in episodes.dims or "piece_weight" in episodes:
        from munirank.posterior.cells import split_duration_effects

        return split_duration_effects(posterior, episodes)
    scale = time_scale(episodes)
    horizon = float(episodes.attrs["horizon_months"])
    n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]

    def flat(name: str, *dims: str) -> np.ndarray:
        arr = posterior[name].transpose("chain", "draw", *dims).to_numpy()
        return arr.reshape(n_chain * n_draw, *arr.shape[2:])

    codes = as_codes(episodes)
    n_muni = episodes.sizes["municipality"]
    order = np.argsort(codes, kind="stable")  # by municipality: the sums run over segments
    starts = np.searchsorted(codes[order], np.arange(n_muni + 1))
    counts = np.diff(starts).astype(float)  # episodes per municipality
    alpha = flat("alpha")
    beta0, beta = flat("beta0"), flat("beta", "covariate")
    x_t = np.ascontiguousarray(episodes["x"].to_numpy()[order].T)
    muni = flat("gamma", "municipal_covariate") @ episodes["z"].to_numpy().T
    u = flat("u", "municipality")
    observed = np.empty_like(u)
    expected = np.empty_like(u)
    logc = float(np.log(horizon / scale))
    # draws per chunk: at most _CHUNK, and at most ~20 M floats of linear predictor (a
    # million episodes would otherwise hold 256 x 1e6 floats = 2 GB per chunk)
    chunk = int(max(2, min(_CHUNK, 20_000_000 // max(len(codes), 1))))
    # one buffer for every chunk's linear predictor: a new (chunk x episodes) array per chunk
    # page-faulted 160 MB twice per chunk at 1,000,000 episodes (sys time 1.35 s against
    # 0.11 s per 200 draws, measured; results identical)
    buffer = np.empty((min(chunk, len(alpha)), x_t.shape[1]))
    for lo in range(0, len(alpha), chunk):
        sl = slice(lo, lo + chunk)
        value, slope = _gamma_table(1.0 / alpha[sl])
        base = buffer[:len(alpha[sl])]
        np.matmul(beta[sl], x_t, out=base)  # BLAS, one chunk of draws at a time
        base += beta0[sl, None]
        obs, exp_ = _rmst_sums(alpha[sl], base, muni[sl], u[sl], starts, value, slope,
                               logc, scale)
        observed[sl], expected[sl] = obs / counts, exp_ / counts
    dims = ("chain", "draw", "municipality")
    shape = (n_chain, n_draw, -1)
    out = xr.Dataset(
        {"observed_months": (dims, observed.reshape(shape)),
         "expected_months": (dims, expected.reshape(shape))},
        coords={"chain": posterior["chain"], "draw": posterior["draw"],
                "municipality": posterior["municipality"]},
    )
    out["effect_months"] = out["observed_months"] - out["expected_months"]
    out["log_hr"] = posterior["u"]
    out["hazard_ratio"] = np.exp(posterior["u"])
    out["time_ratio"] = np.exp(-posterior["u"] / posterior["alpha"])
    out.attrs.update(horizon_months=horizon, units="months")
    return out
