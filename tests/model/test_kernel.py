import numba
import numpy as np
import pytest

from munirank.input.spec import ModelSpec
from munirank.model.build import create_model
from munirank.model.kernel import FASTMATH, cumulative_hazard_kernel, exp, hazard_data


def test_exp_matches_numpy_to_one_ulp():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.uniform(-708, 709, 200_000), rng.uniform(-5, 5, 200_000),
                        [0.0, 1.0, -1.0, 1e-300, -1e-300]])
    ours = np.array([exp(v) for v in x[:2000]] + [exp(v) for v in x[-5:]])
    ref = np.exp(np.concatenate([x[:2000], x[-5:]]))
    np.testing.assert_array_less(np.abs(ours - ref), 2.0 * np.spacing(ref) + 1e-300)
    assert exp(0.0) == 1.0


def test_exp_near_the_ends_of_the_range_inlined_with_fastmath():
    """exp(709.5) needs 2**1024 (one exponent beyond float64's): it is built as 2 * 2**1023.
    Checked inside a loop compiled with the kernel's fastmath flags, as the kernel uses it."""
    @numba.njit(fastmath=FASTMATH)
    def loop(x, out):
        for k in range(x.shape[0]):
            out[k] = exp(x[k])

    x = np.concatenate([np.linspace(700.0, 709.78, 4001), np.linspace(-708.0, -700.0, 4001)])
    out = np.empty_like(x)
    loop(x, out)
    ref = np.exp(x)
    np.testing.assert_array_less(np.abs(out - ref), 2.0 * np.spacing(ref))
    loop(np.array([709.79, -708.01]), out[:2])
    assert out[0] == np.inf and out[1] == 0.0


@pytest.mark.parametrize(("x", "expected"), [(np.inf, np.inf), (710.0, np.inf),
                                             (-np.inf, 0.0), (-800.0, 0.0)])
def test_exp_at_the_ends(x, expected):
    assert exp(x) == expected


def test_exp_keeps_nan():
    assert np.isnan(exp(np.nan))


def _episodes(rng, n, m, delayed_share):
    codes = rng.integers(0, m, n)
    log_t = np.log(rng.uniform(0.02, 1.3, n))
    delayed = rng.random(n) < delayed_share
    log_s = np.where(delayed, log_t - rng.uniform(0.1, 2.0, n), -np.inf)
    age = rng.integers(18, 65, n).astype(float)
    dummy = rng.integers(0, 2, n).astype(float)
    income = rng.lognormal(0, 1, n)     # continuous: stays float64
    big = rng.integers(200, 300, n).astype(float)  # integers outside int8: stay float64
    count = rng.integers(-120, 121, n).astype(float)  # int8, too many values for a pattern
    raw = np.column_stack([age, dummy, income, big, count])
    centre, scale = raw.mean(axis=0), raw.std(axis=0)
    return (raw - centre) / scale, centre, scale, codes, log_t, log_s


def _reference(x, codes, log_t, log_s, a, beta, alpha):
    eta = a[codes] + x @ beta
    ht = np.exp(eta + alpha * log_t)
    delayed = np.isfinite(log_s)
    hs = np.where(delayed, np.exp(eta + alpha * np.where(delayed, log_s, 0.0)), 0.0)
    h = ht - hs
    d_alpha = (ht * log_t).sum() - (hs * np.where(delayed, log_s, 0.0)).sum()
    return h.sum(), np.bincount(codes, h, len(a)), x.T @ h, d_alpha


@pytest.mark.parametrize(("n", "delayed_share"), [(5000, 0.1), (2500, 0.0), (700, 1.0), (3, 0.5)])
def test_kernel_equals_numpy(n, delayed_share):
    """Value and gradient of the one-pass kernel equal the plain numpy formulas, with
    delayed entries, several blocks, municipalities without episodes and both column kinds."""
    rng = np.random.default_rng(n)
    m = 40
    x, centre, scale, codes, log_t, log_s = _episodes(rng, n, m, delayed_share)
    hz = hazard_data(x, centre, scale, codes, log_t, log_s)
    parts = hz.unpacked()
    # age and the dummy are looked up by pattern, except in a register too small to pay
    patterned = [0, 1] if n > 100 else []
    assert list(parts["in_pattern"]) == patterned and list(parts["real"]) == [2, 3]
    assert sorted([*parts["small"], *patterned]) == [0, 1, 4]
    assert hz.x_small.dtype == np.int8 and len(parts["log_s"]) == np.isfinite(log_s).sum()
    assert parts["table"].shape[0] == len(patterned)
    a = rng.normal(-1.0, 0.3, m)
    beta = rng.normal(0, 0.3, 5)
    alpha = 1.3
    value, g_a, g_beta, g_alpha = cumulative_hazard_kernel(
        a, beta, np.asarray(alpha), *hz.arrays())
    ref_value, ref_a, ref_beta, ref_alpha = _reference(x, codes, log_t, log_s, a, beta, alpha)
    np.testing.assert_allclose(value, ref_value, rtol=1e-12)
    np.testing.assert_allclose(g_a, ref_a, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(g_alpha, ref_alpha, rtol=1e-11)
    np.testing.assert_allclose(g_beta, ref_beta, rtol=1e-9, atol=1e-9 * abs(ref_value))


def test_model_gradient_matches_finite_differences(tiny_episodes):
    model = create_model(tiny_episodes, ModelSpec())
    logp = model.compile_logp()
    dlogp = model.compile_dlogp()
    rng = np.random.default_rng(2)
    point = {k: v + rng.normal(0, 0.1, np.shape(v)) for k, v in model.initial_point().items()}
    grad = dlogp(point)
    flat = np.concatenate([np.ravel(point[v.name]) for v in model.value_vars])
    sizes = [np.size(point[v.name]) for v in model.value_vars]

    def at(vec):
        parts = np.split(vec, np.cumsum(sizes)[:-1])
        return logp({v.name: p.reshape(np.shape(point[v.name]))
                     for v, p in zip(model.value_vars, parts, strict=True)})

    h = 1e-5
    picks = rng.choice(len(flat), 12, replace=False)
    for i in picks:
        e = np.zeros_like(flat)
        e[i] = h
        fd = (at(flat + e) - at(flat - e)) / (2 * h)
        assert grad[i] == pytest.approx(fd, rel=1e-5, abs=1e-4)


def test_python_and_numba_backends_agree(tiny_episodes):
    """The Op's perform (PyTensor's C/Python backend) and its numba implementation."""
    model = create_model(tiny_episodes, ModelSpec())
    point = model.initial_point()
    fast = model.compile_dlogp(mode="NUMBA")(point)
    plain = model.compile_dlogp(mode="FAST_COMPILE")(point)
    np.testing.assert_allclose(fast, plain, rtol=1e-12)


def test_cache_key_follows_the_kernel_source(monkeypatch):
    """PyTensor's cache key of the Op changes with this module's source (SOURCE_VERSION), so
    that a cached graph never runs an older kernel than the installed one."""
    from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key

    import munirank.model.kernel as ch

    node = ch.cumulative_hazard_op.make_node(np.zeros(2), np.zeros(1), np.asarray(1.0))
    fn, key = numba_funcify_and_cache_key(ch.cumulative_hazard_op, node=node)
    assert fn is ch.cumulative_hazard_kernel and key is not None
    monkeypatch.setattr(ch, "SOURCE_VERSION", ch.SOURCE_VERSION + 1)
    _, other = numba_funcify_and_cache_key(ch.cumulative_hazard_op, node=node)
    assert other != key
