r"""Elementary functions that LLVM can vectorise, and the cache key of kernels that use them.

numba calls the scalar libm ``log``, ``log1p`` and ``erfc``, which LLVM cannot vectorise
without Intel's SVML (the same reason :func:`munirank.model.kernel.exp` is written by hand).
The alternative baselines' kernel (:mod:`munirank.model.family_kernel`) needs them per
episode (the log-logistic softplus, the log-normal survival function) and PSIS
(:mod:`munirank.checking.psis`) per tail draw and grid point.

:func:`log`: :math:`x = 2^e m` with :math:`m \in [\sqrt{1/2}, \sqrt 2)`;
:math:`\log m = 2\,\mathrm{atanh}\,f = 2(f + f^3/3 + \dots + f^{21}/21)` with
:math:`f = (m-1)/(m+1)`, :math:`|f| \le 0.172` (truncation below 1e-18 relative);
:math:`e \ln 2` added in two parts (Cody and Waite). Accurate to 2 ulp over the whole range,
subnormals included (tested against ``numpy.log``); 0, negative numbers, infinity and NaN
give what ``numpy.log`` gives. :func:`log1p`: :math:`\log(1 + y)` corrected by
:math:`((u - 1) - y)/u` for the rounding of :math:`u = 1 + y` (Goldberg's method), so
that it is accurate for small :math:`y` too. :func:`softplus` and :func:`normal_log_sf`
work on arrays, one call per loop: LLVM inlines a function into a loop (and can then
vectorise it) only below a size, which two of these together exceed (measured: a loop
calling :func:`log1p` with four more selects in it ran scalar, 25-40 ns an element against
6-10 ns). All are compiled without reassociation (they rely on the order of their
operations).

:func:`sources_key`: numba's on-disk cache of a function is validated against its own
source file only, not against the functions it calls from other modules, whose machine code
it holds. A kernel that calls these (or :mod:`munirank.model.kernel`'s helpers) from another
module is therefore built by a factory that closes over :func:`sources_key` of every module
it depends on: numba's cache index includes closure variables, so an edit in any of them
compiles the kernel anew instead of running the old code from the cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import math

import numba
import numpy as np

from munirank.model.kernel import _bits, _from_bits, exp

_LN2_HI = 6.93147180369123816490e-01
_LN2_LO = 1.90821492927058770002e-10
_SQRT2 = math.sqrt(2.0)
_TWO52 = 4503599627370496.0  # 2**52: scales a subnormal into the normal range
_MANTISSA = 0x000FFFFFFFFFFFFF
_ONE_BITS = 0x3FF0000000000000
_DBL_MIN = 2.2250738585072014e-308
(_P0, _P1, _P2, _P3, _P4, _P5, _P6, _P7, _P8, _P9) = (1.0 / (2 * k + 3) for k in range(10))


@numba.njit(fastmath={"contract"}, error_model="numpy", cache=True)
def log(x0: float) -> float:
    """Natural logarithm, vectorisable by LLVM (module docstring); 2 ulp."""
    sub = x0 < _DBL_MIN
    x = x0 * _TWO52 if sub else x0
    bits = _bits(x)
    e = np.float64(((bits >> 52) & 0x7FF) - 1023) - (52.0 if sub else 0.0)
    m = _from_bits((bits & _MANTISSA) | _ONE_BITS)  # in [1, 2)
    big = m > _SQRT2
    m = m * 0.5 if big else m
    e = e + 1.0 if big else e
    f = (m - 1.0) / (m + 1.0)
    s = f * f
    p = _P9
    p = p * s + _P8
    p = p * s + _P7
    p = p * s + _P6
    p = p * s + _P5
    p = p * s + _P4
    p = p * s + _P3
    p = p * s + _P2
    p = p * s + _P1
    p = p * s + _P0
    f2 = f + f
    y = e * _LN2_HI + (e * _LN2_LO + (f2 + f2 * s * p))
    y = -np.inf if x0 == 0.0 else y
    y = np.inf if x0 == np.inf else y
    return np.nan if (x0 < 0.0) or (x0 != x0) else y


@numba.njit(fastmath={"contract"}, error_model="numpy", cache=True)
def log1p(y: float) -> float:
    """log(1 + y) for finite y > -1, accurate for small y too (module docstring).

    No guards for other arguments: any select more and LLVM no longer inlined it into the
    loops that call it, which then ran scalar (measured: 25-40 against 6-10 ns a call).
    """
    u = 1.0 + y
    return log(u) - ((u - 1.0) - y) / u


# W. J. Cody, Rational Chebyshev approximations for the error function, Math. Comp. 23
# (1969) 631-637; the coefficients of SPECFUN's CALERF (netlib.org/specfun/erf)
_A = (3.16112374387056560e00, 1.13864154151050156e02, 3.77485237685302021e02,
      3.20937758913846947e03, 1.85777706184603153e-1)
_B = (2.36012909523441209e01, 2.44024637934444173e02, 1.28261652607737228e03,
      2.84423683343917062e03)
_C = (5.64188496988670089e-1, 8.88314979438837594e00, 6.61191906371416295e01,
      2.98635138197400131e02, 8.81952221241769090e02, 1.71204761263407058e03,
      2.05107837782607147e03, 1.23033935479799725e03, 2.15311535474403846e-8)
_D = (1.57449261107098347e01, 1.17693950891312499e02, 5.37181101862009858e02,
      1.62138957456669019e03, 3.29079923573345963e03, 4.36261909014324716e03,
      3.43936767414372164e03, 1.23033935480374942e03)
_CODY_P = (3.05326634961232344e-1, 3.60344899949804439e-1, 1.25781726111229246e-1,
      1.60837851487422766e-2, 6.58749161529837803e-4, 1.63153871373020978e-2)
_CODY_Q = (2.56852019228982242e00, 1.87295284992346047e00, 5.27905102951428412e-1,
      6.05183413124413191e-2, 2.33520497626869185e-3)
_SQRPI = 5.6418958354775628695e-1  # 1 / sqrt(pi)
_ERF_SMALL = 0.46875
_SQRT1_2 = math.sqrt(0.5)
_LN2 = math.log(2.0)
_SQRT_2_PI = math.sqrt(2.0 / math.pi)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


(_A0, _A1, _A2, _A3, _A4), (_B0, _B1, _B2, _B3) = _A, _B
(_C0, _C1, _C2, _C3, _C4, _C5, _C6, _C7, _C8) = _C
(_D0, _D1, _D2, _D3, _D4, _D5, _D6, _D7) = _D
(_CP0, _CP1, _CP2, _CP3, _CP4, _CP5), (_CQ0, _CQ1, _CQ2, _CQ3, _CQ4) = _CODY_P, _CODY_Q


@numba.njit(fastmath={"contract"}, error_model="numpy", inline="always")
def _cody(y: float) -> float:
    """For y >= 0: erfc(y) where y <= 0.46875, else R(y) with erfc(y) = exp(-y^2) R(y).

    Cody's loops written out with scalar constants, and inlined by numba into its callers
    here (which are compiled with the same flags): as a call, LLVM did not inline it and the
    loops ran scalar (21 ns an element, against 3 ns).
    """
    ysq = y * y
    num = ((((_A4 * ysq + _A0) * ysq + _A1) * ysq + _A2) * ysq + _A3)
    den = ((((ysq + _B0) * ysq + _B1) * ysq + _B2) * ysq + _B3)
    small = 1.0 - y * num / den
    num = ((((((((_C8 * y + _C0) * y + _C1) * y + _C2) * y + _C3) * y + _C4) * y + _C5) * y
            + _C6) * y + _C7)
    den = ((((((((y + _D0) * y + _D1) * y + _D2) * y + _D3) * y + _D4) * y + _D5) * y
            + _D6) * y + _D7)
    middle = num / den
    inv = 1.0 / ysq
    num = (((((_CP5 * inv + _CP0) * inv + _CP1) * inv + _CP2) * inv + _CP3) * inv + _CP4)
    den = (((((inv + _CQ0) * inv + _CQ1) * inv + _CQ2) * inv + _CQ3) * inv + _CQ4)
    large = (_SQRPI - inv * num / den) / y
    return small if y <= _ERF_SMALL else (middle if y <= 4.0 else large)


@numba.njit(fastmath={"contract"}, error_model="numpy", cache=True)
def softplus(z: np.ndarray, n: int, sp: np.ndarray, sig: np.ndarray) -> None:
    """sp[:n] = log(1 + e^z) and sig[:n] = 1 / (1 + e^-z), from one exponential each.

    Three loops, one call each, so that LLVM inlines and vectorises every one.
    """
    for k in range(n):
        sig[k] = exp(-abs(z[k]))
    for k in range(n):
        sp[k] = log1p(sig[k])
    for k in range(n):
        e = sig[k]
        sp[k] += z[k] if z[k] > 0.0 else 0.0
        sig[k] = (1.0 if z[k] >= 0.0 else e) / (1.0 + e)


@numba.njit(fastmath={"contract"}, error_model="numpy", cache=True)
def normal_sf(z: np.ndarray, n: int, out: np.ndarray, work: np.ndarray) -> None:
    """out[:n] = Phi(-z), by Cody's erfc (``work``: n scratch); see :func:`normal_log_sf`."""
    for k in range(n):
        work[k] = _cody(abs(z[k]) * _SQRT1_2)
    for k in range(n):
        out[k] = exp(-0.5 * z[k] * z[k])
    for k in range(n):
        small = abs(z[k]) * _SQRT1_2 <= _ERF_SMALL
        tail = 0.5 * (work[k] if small else out[k] * work[k])  # Phi(-|z|)
        out[k] = tail if z[k] > 0.0 else 1.0 - tail


@numba.njit(fastmath={"contract"}, error_model="numpy", cache=True)
def normal_log_sf(z: np.ndarray, n: int, lq: np.ndarray, mills: np.ndarray,
                  work: np.ndarray) -> None:
    r"""lq[:n] = log Phi(-z) and mills[:n] = phi(z) / Phi(-z) (``work``: 3 x n scratch).

    With :math:`y = |z|/\sqrt 2`, :math:`\Phi(-|z|) = \mathrm{erfc}(y)/2`, erfc by Cody's
    rational approximations (accurate to about 1e-16); beyond :math:`y = 0.46875` they give
    :math:`R` with :math:`\mathrm{erfc}(y) = e^{-y^2}R(y)`, so that for :math:`z > 0`
    :math:`\log\Phi(-z) = -z^2/2 + \log R - \log 2` and :math:`M = \sqrt{2/\pi}/R`, without
    underflow however large z is. For :math:`z \le 0`, :math:`\log\Phi(-z) =
    \mathrm{log1p}(-\mathrm{erfc}(y)/2)`. One call per loop (see :func:`softplus`).
    """
    r = work[0]
    ey = work[1]
    lr = work[2]
    for k in range(n):
        r[k] = _cody(abs(z[k]) * _SQRT1_2)
    for k in range(n):
        ey[k] = exp(-0.5 * z[k] * z[k])
    for k in range(n):
        lr[k] = log(r[k])
    for k in range(n):
        small = abs(z[k]) * _SQRT1_2 <= _ERF_SMALL
        tail = 0.5 * (r[k] if small else ey[k] * r[k])  # Phi(-|z|)
        upper = z[k] > 0.0
        mills[k] = (_SQRT_2_PI / r[k] if upper and not small
                    else ey[k] * _INV_SQRT_2PI / (tail if upper else 1.0 - tail))
        lq[k] = -tail
    for k in range(n):
        lq[k] = log1p(lq[k])
    for k in range(n):
        above = lr[k] - _LN2 - (0.0 if abs(z[k]) * _SQRT1_2 <= _ERF_SMALL
                                else 0.5 * z[k] * z[k])
        lq[k] = above if z[k] > 0.0 else lq[k]


def sources_key(*modules: str) -> int:
    """A hash of the named modules' source files, as an integer (see the module docstring)."""
    digest = hashlib.sha256()
    for name in modules:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            raise ImportError(f"cannot find the source of {name}")
        with open(spec.origin, "rb") as fh:
            digest.update(fh.read())
    return int(digest.hexdigest()[:15], 16)
