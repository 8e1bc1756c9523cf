"""The alternative baselines' compiled kernel (issue 29) against the per-episode PyTensor graph
it replaced, the numpy log-likelihoods and scipy."""

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from pymc.distributions.dist_math import normal_lccdf
from scipy import special, stats

from munirank.input.episodes import as_codes
from munirank.input.spec import ModelSpec
from munirank.model import family_kernel as fk
from munirank.model.build import (
    _group_effect,
    baseline_loglik,
    centring_weights,
    create_model,
    crude_log_rate,
    piece_cuts,
    piece_exposure,
    piece_names,
    time_scale,
)
from munirank.model.kernel import episode_order, hazard_data, shared_inputs

ALTERNATIVES = ["exponential", "loglogistic", "lognormal", "piecewise_exponential"]


# --- the per-episode graph of munirank before issue 29, kept here as the reference --------

def _per_episode_loglik(baseline, eta, theta, t, s, d, cuts):
    """Sum of the pointwise log-likelihood as PyTensor terms, one per episode."""
    if baseline == "piecewise_exponential":
        full = pt.concatenate([pt.zeros(1), theta])
        events_piece = np.bincount(np.searchsorted(cuts, t, side="left"), weights=d,
                                   minlength=len(cuts) + 1)
        cum = pt.dot(pt.as_tensor(piece_exposure(t, s, cuts)), pt.exp(full))
        return pt.dot(d, eta) + pt.dot(events_piece, full) - pt.sum(pt.exp(eta) * cum)
    delayed = np.flatnonzero(s > 0)
    alpha = 1.0 if baseline == "exponential" else theta
    log_t = np.log(t)
    z_t = eta + alpha * log_t
    z_s = eta[delayed] + alpha * np.log(s[delayed])
    log_a = pt.log(alpha) - log_t
    if baseline == "loglogistic":
        sp = pt.softplus(z_t)
        return pt.sum(d * (log_a + z_t - sp)) - pt.sum(sp) + pt.sum(pt.softplus(z_s))
    if baseline == "lognormal":
        return (pt.sum(d * (log_a - 0.5 * z_t**2)) - 0.5 * np.log(2 * np.pi) * d.sum()
                + pt.sum((1 - d) * _log_normal_sf(z_t)) - pt.sum(_log_normal_sf(z_s)))
    return pt.sum(d * (log_a + z_t)) - pt.sum(pt.exp(z_t)) + pt.sum(pt.exp(z_s))


def _log_normal_sf(z):
    """log Phi(-z) as log(erfc(z / sqrt 2) / 2), accurate for the z of these tests.

    The former graph used PyMC's ``normal_lccdf``, which is off by up to 2.6e-8 near z = 1
    (:func:`test_pymc_normal_lccdf_is_less_accurate`), more than this module's tolerances.
    """
    return pt.log(0.5 * pt.erfc(z / np.sqrt(2.0)))


def test_pymc_normal_lccdf_is_less_accurate():
    """Why the reference above does not use PyMC's normal_lccdf: against scipy's log_ndtr it
    errs by up to 2.6e-8 (value) and 4e-7 relative (gradient); the kernel by 1e-13 or less
    (test_normal_log_sf_and_mills_ratio_match_scipy)."""
    z = pt.dvector()
    x = np.linspace(-5, 8, 13_001)
    value = pytensor.function([z], normal_lccdf(0.0, 1.0, z))(x)
    err = np.abs(value - special.log_ndtr(-x)).max()
    assert 1e-9 < err < 1e-7


def _per_episode_model(episodes, spec):
    """munirank's model of an alternative baseline before issue 29 (same priors, centring and
    order of free variables as now; the likelihood one PyTensor term per episode)."""
    p = spec.priors
    scale = time_scale(episodes)
    t = episodes["exit"].to_numpy() / scale
    s = episodes["entry"].to_numpy() / scale
    d = episodes["event"].to_numpy().astype(float)
    codes = as_codes(episodes)
    coords = {name: episodes[name].to_numpy().tolist()
              for name in ("municipality", "covariate", "municipal_covariate")}
    coords["piece"] = piece_names()
    with pm.Model(coords=coords) as model:
        x_d, z_d = pm.Data("x", episodes["x"].to_numpy()), pm.Data("z", episodes["z"].to_numpy())
        beta0 = pm.Normal("beta0", mu=crude_log_rate(episodes), sigma=p.beta0_sigma)
        beta = pm.Normal("beta", 0.0, p.beta_sigma, dims="covariate")
        gamma = pm.Normal("gamma", 0.0, p.gamma_sigma, dims="municipal_covariate")
        sigma = pm.HalfNormal("sigma", p.sigma_sigma)
        events = np.bincount(codes, weights=d, minlength=len(coords["municipality"]))
        z_gamma = pt.dot(z_d, gamma)
        u = _group_effect(spec, sigma, centring_weights(events, spec), beta0 + z_gamma)
        eta = beta0 + pt.dot(x_d, beta) + (z_gamma + u)[codes]
        if spec.baseline == "piecewise_exponential":
            theta = pm.Normal("log_piece", 0.0, 1.0, dims="piece")
        elif spec.baseline == "exponential":
            theta = None
        else:
            theta = pm.LogNormal("alpha", mu=p.alpha_mu, sigma=p.alpha_sigma)
        pm.Potential("loglik", _per_episode_loglik(spec.baseline, eta, theta, t, s, d,
                                                   piece_cuts(episodes)))
    return model


def _points(model, n, seed):
    rng = np.random.default_rng(seed)
    start = model.initial_point()
    return [{k: v + rng.normal(0, 0.3, np.shape(v)) for k, v in start.items()}
            for _ in range(n)]


@pytest.mark.parametrize("baseline", ALTERNATIVES)
def test_log_density_and_gradient_equal_the_per_episode_graph(tiny_episodes, baseline):
    """At 20 points: the model with the compiled kernel has the same log density and gradient
    as the per-episode model it replaced (its draws cannot be bit-identical: the sums run
    in another order)."""
    spec = ModelSpec(baseline=baseline)
    new, old = create_model(tiny_episodes, spec), _per_episode_model(tiny_episodes, spec)
    assert [v.name for v in new.value_vars] == [v.name for v in old.value_vars]
    logp_new, logp_old = new.compile_logp(), old.compile_logp()
    dlogp_new, dlogp_old = new.compile_dlogp(), old.compile_dlogp()
    for point in _points(new, 20, seed=len(baseline)):
        assert logp_new(point) == pytest.approx(logp_old(point), rel=1e-10)
        np.testing.assert_allclose(dlogp_new(point), dlogp_old(point), rtol=1e-9, atol=1e-9)


def _random_episodes(rng, n, m, delayed_share):
    codes = rng.integers(0, m, n)
    t = rng.uniform(0.02, 1.8, n)
    s = np.where(rng.random(n) < delayed_share, t * rng.uniform(0.05, 0.95, n), 0.0)
    d = (rng.random(n) < 0.45).astype(float)
    raw = np.column_stack([rng.integers(18, 65, n), rng.integers(0, 2, n),
                           rng.lognormal(0, 1, n), rng.integers(-120, 121, n)]).astype(float)
    centre, scale = raw.mean(axis=0), raw.std(axis=0)
    return codes, t, s, d, (raw - centre) / scale, centre, scale


@pytest.mark.parametrize("baseline", ["loglogistic", "lognormal", "piecewise_exponential"])
@pytest.mark.parametrize(("n", "delayed_share"), [(4000, 0.2), (1500, 0.0), (900, 1.0)])
def test_op_value_and_gradient_equal_pytensor_of_the_per_episode_terms(baseline, n,
                                                                      delayed_share):
    """Random registers with delayed entry, several blocks, pattern and float columns: the
    Op's value and its gradient by a, beta and theta equal PyTensor's gradient of the
    per-episode log-likelihood (the event terms added as sufficient statistics)."""
    rng = np.random.default_rng(n)
    m = 30
    codes, t, s, d, x, centre, scale = _random_episodes(rng, n, m, delayed_share)
    log_s = np.log(s, out=np.full(n, -np.inf), where=s > 0)
    hz = hazard_data(x, centre, scale, codes, np.log(t), log_s)
    cuts = np.array([0.125, 0.25, 0.5, 0.75])
    extra = fk.family_extra(baseline, episode_order(codes, log_s), d,
                            piece_exposure(t, s, cuts))
    a, beta = pt.dvector("a"), pt.dvector("beta")
    piecewise = baseline == "piecewise_exponential"
    theta = pt.dvector("theta") if piecewise else pt.dscalar("alpha")
    events_m = np.bincount(codes, weights=d, minlength=m)
    sum_d_eta = (events_m * a).sum() + ((d @ x) * beta).sum()
    if piecewise:
        events_piece = np.bincount(np.searchsorted(cuts, t), weights=d, minlength=5)
        event_part = sum_d_eta + (events_piece[1:] * theta).sum()
    elif baseline == "loglogistic":
        event_part = d.sum() * pt.log(theta) + (theta - 1) * (d * np.log(t)).sum() + sum_d_eta
    else:
        event_part = d.sum() * (pt.log(theta) - 0.5 * np.log(2 * np.pi)) - (d * np.log(t)).sum()
    data = shared_inputs(hz, lambda v: None)
    ours = event_part + fk.family_loglik(baseline, a, beta, theta if piecewise
                                         else pt.stack([theta]), data, extra, lambda v: None)
    reference = _per_episode_loglik(baseline, a[codes] + pt.dot(x, beta), theta, t, s, d, cuts)
    inputs = [a, beta, theta]
    f_ours = pytensor.function(inputs, [ours, *pytensor.grad(ours, inputs)])
    f_ref = pytensor.function(inputs, [reference, *pytensor.grad(reference, inputs)])
    for _ in range(5):
        args = [rng.normal(-0.5, 0.5, m), rng.normal(0, 0.3, x.shape[1]),
                rng.normal(0, 0.4, 4) if piecewise else rng.uniform(0.5, 2.0)]
        got, want = f_ours(*args), f_ref(*args)
        assert got[0] == pytest.approx(want[0], rel=1e-10)
        for g, w in zip(got[1:], want[1:], strict=True):
            np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-9 * np.abs(w).max())


@pytest.mark.parametrize("baseline", ["weibull", *ALTERNATIVES])
def test_pointwise_rows_equal_baseline_loglik(baseline):
    """The LOO pass's pointwise log-likelihood equals the numpy one, extreme z included."""
    rng = np.random.default_rng(3)
    n, draws = 2000, 40
    s = np.where(rng.random(n) < 0.3, rng.uniform(0.05, 1.0, n), 0.0)
    t = s + rng.uniform(0.02, 2.0, n)
    d = (rng.random(n) < 0.5).astype(float)
    eta = rng.normal(0, 1.5, (draws, n))
    eta[0, :6] = [40, -40, 25, 31, -31, 300]
    alpha = rng.uniform(0.5, 2, draws)
    cuts = np.array([0.125, 0.25, 0.5, 0.75])
    lp = np.column_stack([np.zeros(draws), rng.normal(0, 0.5, (draws, 4))])
    kwargs, ours_kw = {}, {}
    if baseline == "piecewise_exponential":
        kwargs = {"log_piece": lp[:, 1:], "cuts": cuts}
        ours_kw = {"piece": np.searchsorted(cuts, t), "exposure": piece_exposure(t, s, cuts),
                   "log_piece": lp}
    elif baseline != "exponential":
        kwargs, ours_kw = {"alpha": alpha[:, None]}, {"alpha": alpha}
    with np.errstate(over="ignore"):
        want = baseline_loglik(baseline, t, s, d, eta, **kwargs)
    got = fk.pointwise_rows(baseline, np.ascontiguousarray(eta.T), log_t=np.log(t),
                            log_s=np.log(s, out=np.full(n, -np.inf), where=s > 0), d=d,
                            **ours_kw).T
    finite = np.isfinite(want)
    np.testing.assert_array_equal(got[~finite], want[~finite])
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-12, atol=1e-12)


def test_numba_and_python_backends_agree(tiny_episodes):
    model = create_model(tiny_episodes, ModelSpec(baseline="lognormal"))
    point = model.initial_point()
    fast = model.compile_dlogp(mode="NUMBA")(point)
    plain = model.compile_dlogp(mode="FAST_COMPILE")(point)
    np.testing.assert_allclose(fast, plain, rtol=1e-12)


def test_cache_key_follows_the_sources(monkeypatch):
    """PyTensor's cache key of the Op is the hash of the kernel's sources (this module, the
    Weibull kernel's helpers, vector_math) and changes with it."""
    from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key

    from munirank.model.vector_math import sources_key

    assert fk.SOURCE_VERSION == sources_key("munirank.model.family_kernel",
                                            "munirank.model.kernel",
                                            "munirank.model.vector_math")
    op = fk.FamilyLoglik("loglogistic")
    node = op.make_node(np.zeros(2), np.zeros(1), np.ones(1))
    fn, key = numba_funcify_and_cache_key(op, node=node)
    assert fn is fk.KERNELS["loglogistic"] and key is not None
    monkeypatch.setattr(fk, "SOURCE_VERSION", fk.SOURCE_VERSION + 1)
    assert numba_funcify_and_cache_key(op, node=node)[1] != key
    other = fk.FamilyLoglik("lognormal")
    assert numba_funcify_and_cache_key(other, node=other.make_node(
        np.zeros(2), np.zeros(1), np.ones(1)))[1] != key


def test_normal_log_sf_and_mills_ratio_match_scipy():
    from munirank.model.vector_math import normal_log_sf

    z = np.concatenate([np.linspace(-40, 60, 20001), [0.0, 0.6629, 0.6630, 5.6568, 5.6569,
                                                     -0.6630, -5.6569, 200.0, 1e5]])
    lq, mills, work = np.empty_like(z), np.empty_like(z), np.empty((3, len(z)))
    normal_log_sf(z, len(z), lq, mills, work)
    want = special.log_ndtr(-z)
    # 2e-13 at most, on values below 1e-280 (the rounding of z^2 in exp(-z^2 / 2))
    np.testing.assert_allclose(lq, want, rtol=1e-12, atol=1e-300)
    # the ratio through erfcx where z > 0 (a ratio of two tiny numbers would lose digits)
    with np.errstate(divide="ignore", invalid="ignore"):
        want_mills = np.where(z > 0, np.sqrt(2 / np.pi) / special.erfcx(z / np.sqrt(2)),
                              stats.norm.pdf(z) / special.ndtr(-z))
    normal = want_mills > 1e-290  # below, exp flushes subnormals to 0
    np.testing.assert_allclose(mills[normal], want_mills[normal], rtol=1e-13)
    assert np.abs(mills[~normal]).max() < 1e-290


def test_normal_log_sf_is_the_same_whatever_else_is_in_the_block():
    """Each value is the same bit for bit whether its block holds a z beyond Cody's last
    branch point (|z| = 5.66) or not (a version that ran that branch only on such blocks
    kept this, and was slower in the sampler: see model.vector_math's history)."""
    from munirank.model.vector_math import normal_log_sf, normal_sf

    rng = np.random.default_rng(3)
    near = rng.normal(0.0, 1.5, 4001)
    near = near[np.abs(near) <= 5.6]
    both = np.concatenate([near, [6.0, -7.5, 30.0]])

    def run(z):
        lq, mills, work, sf = (np.empty_like(z), np.empty_like(z), np.empty((3, len(z))),
                               np.empty_like(z))
        normal_log_sf(z, len(z), lq, mills, work)
        normal_sf(z, len(z), sf, work[0])
        return lq, mills, sf

    for alone, mixed in zip(run(near), run(both), strict=True):
        assert np.array_equal(alone, mixed[:len(near)])
    for k, z in enumerate(both[len(near):]):  # and a far z alone as within the block
        for alone, mixed in zip(run(np.array([z])), run(both), strict=True):
            assert alone[0] == mixed[len(near) + k]


def test_softplus_and_logistic_match_numpy():
    from munirank.model.vector_math import softplus

    z = np.concatenate([np.linspace(-750, 750, 30001), [0.0, -1e-12, 1e-12]])
    sp, sig = np.empty_like(z), np.empty_like(z)
    softplus(z, len(z), sp, sig)
    np.testing.assert_allclose(sp, np.logaddexp(0.0, z), rtol=1e-15, atol=1e-300)
    np.testing.assert_allclose(sig, special.expit(z), rtol=1e-15, atol=1e-300)


def test_normal_sf_matches_scipy():
    from munirank.model.vector_math import normal_sf

    z = np.concatenate([np.linspace(-40, 40, 20001), [0.0, 0.6629, 0.6630, 5.6568, 5.6569]])
    out, work = np.empty_like(z), np.empty_like(z)
    normal_sf(z, len(z), out, work)
    want = special.ndtr(-z)
    normal = want > 1e-290  # below, exp flushes subnormals to 0
    np.testing.assert_allclose(out[normal], want[normal], rtol=1e-12)
    assert np.abs(out[~normal]).max() < 1e-290
