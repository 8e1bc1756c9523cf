"""The cached nutpie callbacks compute what nutpie's own do (munirank.model.nutpie_compile)."""

import ctypes

import numpy as np
import pytest

from munirank.input.spec import ModelSpec
from munirank.model import nutpie_compile
from munirank.model.build import create_model

_VARS = ["alpha", "beta0", "beta", "gamma", "sigma", "u"]


def _call(compiled, x):
    """(logp return code, logp, gradient, expand return code, expanded) at x, via C."""
    n, ne = compiled.n_dim, compiled.n_expanded
    pointer = ctypes.POINTER(ctypes.c_double)
    grad, logp, expanded = np.zeros(n), np.zeros(1), np.zeros(ne)
    user_data = ctypes.c_void_p(compiled.user_data.ctypes.data)
    rc = compiled.compiled_logp_func.ctypes(n, x.ctypes.data_as(pointer),
                                            grad.ctypes.data_as(pointer),
                                            logp.ctypes.data_as(pointer), user_data)
    rc_expand = compiled.compiled_expand_func.ctypes(n, ne, x.ctypes.data_as(pointer),
                                                     expanded.ctypes.data_as(pointer),
                                                     user_data)
    return rc, logp[0], grad, rc_expand, expanded


@pytest.fixture(scope="module")
def both(tiny_episodes):
    model = create_model(tiny_episodes, ModelSpec())
    ours = nutpie_compile.compile_model(model, var_names=_VARS)
    with pytest.MonkeyPatch.context() as mp:  # no cache key: nutpie's own compilation
        mp.setattr(nutpie_compile, "_pytensor_key", lambda fn: None)
        reference = nutpie_compile.compile_model(model, var_names=_VARS)
    return ours, reference


def test_ours_are_the_cached_callbacks_and_the_fallback_is_nutpies(both):
    ours, reference = both
    assert ours.user_data.dtype == np.int64  # our pointer table, not nutpie's record
    assert reference.user_data.dtype.names == ("shared",)


def test_same_log_density_gradient_and_draw_values_as_nutpie(both):
    ours, reference = both
    rng = np.random.default_rng(3)
    for _ in range(5):
        x = 0.5 * rng.normal(size=ours.n_dim)
        rc, logp, grad, rc_e, expanded = _call(ours, x)
        rc_r, logp_r, grad_r, rc_e_r, expanded_r = _call(reference, x)
        assert (rc, rc_e) == (rc_r, rc_e_r) == (0, 0)
        assert logp == logp_r
        np.testing.assert_array_equal(grad, grad_r)
        np.testing.assert_allclose(expanded, expanded_r, rtol=1e-15, atol=1e-15)


def test_wrong_dimension_is_refused_as_nutpie_does(both):
    ours, reference = both
    x = np.zeros(ours.n_dim + 1)
    pointer = ctypes.POINTER(ctypes.c_double)
    out = np.zeros(ours.n_dim + 1)
    for compiled in both:
        rc = compiled.compiled_logp_func.ctypes(
            ours.n_dim + 1, x.ctypes.data_as(pointer), out.ctypes.data_as(pointer),
            out.ctypes.data_as(pointer), ctypes.c_void_p(compiled.user_data.ctypes.data))
        assert rc == -1


def test_non_finite_log_density_code(both):
    ours, reference = both
    x = np.full(ours.n_dim, 800.0)  # exp overflows: the density is not finite
    assert _call(ours, x)[0] == _call(reference, x)[0] != 0


def test_a_second_compilation_loads_the_callbacks_from_the_cache(tiny_episodes, monkeypatch):
    import numba

    model = create_model(tiny_episodes, ModelSpec())
    nutpie_compile.compile_model(model, var_names=_VARS)
    compiled_anew = []
    original = numba.core.ccallback.CFunc._compile_uncached
    monkeypatch.setattr(numba.core.ccallback.CFunc, "_compile_uncached",
                        lambda self: compiled_anew.append(1) or original(self))
    again = nutpie_compile.compile_model(create_model(tiny_episodes, ModelSpec()),
                                       var_names=_VARS)
    assert again.user_data.dtype == np.int64
    assert compiled_anew == []


def test_the_garbage_collector_is_paused_during_compilation_and_restored(tiny_episodes,
                                                                        monkeypatch):
    """Off while compiling (whatever happens there), back as it was afterwards."""
    import gc

    seen = []
    monkeypatch.setattr(nutpie_compile, "_compile",
                        lambda model, var_names: seen.append(gc.isenabled()) or 1 / 0)
    with pytest.raises(ZeroDivisionError):
        nutpie_compile.compile_model(None)
    assert seen == [False] and gc.isenabled()
    gc.disable()
    try:
        with pytest.raises(ZeroDivisionError):
            nutpie_compile.compile_model(None)
        assert not gc.isenabled()
    finally:
        gc.enable()
