"""Logarithms LLVM can vectorise (issue 29), against numpy."""

import numba
import numpy as np

from munirank.model.kernel import FASTMATH
from munirank.model.vector_math import log, log1p


@numba.njit(fastmath=FASTMATH, error_model="numpy")
def _loop_log(x, out):
    for k in range(x.shape[0]):
        out[k] = log(x[k])


@numba.njit(fastmath=FASTMATH, error_model="numpy")
def _loop_log1p(x, out):
    for k in range(x.shape[0]):
        out[k] = log1p(x[k])


def _ulps(got, want):
    ok = np.isfinite(want) & (want != 0)
    return np.max(np.abs(got[ok] - want[ok]) / np.spacing(np.abs(want[ok])))


def test_log_within_two_ulp_over_the_whole_range_inlined_with_fastmath():
    """Checked inside loops compiled with the kernels' fastmath flags, as they use it."""
    rng = np.random.default_rng(0)
    x = np.concatenate([np.exp(rng.uniform(-745, 709, 200_000)), rng.uniform(0.5, 2, 200_000),
                        [5e-324, 1e-310, 2.2250738585072014e-308, 1.0, np.finfo(float).max,
                         1 - 1e-16, 1 + 2.2e-16]])
    out = np.empty_like(x)
    _loop_log(x, out)
    assert _ulps(out, np.log(x)) <= 2
    assert out[-4] == 0.0


def test_log_at_the_ends():
    x = np.array([0.0, -1.0, np.inf, np.nan])
    out = np.empty_like(x)
    _loop_log(x, out)
    assert out[0] == -np.inf and np.isnan(out[1]) and out[2] == np.inf and np.isnan(out[3])


def test_log1p_within_two_ulp_for_small_and_large_arguments():
    rng = np.random.default_rng(1)
    y = np.concatenate([rng.uniform(-1, 1, 200_000)[1:], np.exp(rng.uniform(-700, 700, 200_000)),
                        -np.exp(rng.uniform(-700, -1e-9, 200_000)), [1e-300, -1e-300, 1e-17]])
    out = np.empty_like(y)
    _loop_log1p(y, out)
    assert _ulps(out, np.log1p(y)) <= 2
    assert out[-1] == 1e-17
