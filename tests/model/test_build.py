import numpy as np
import pytest
from scipy import stats

from munirank.input.spec import ModelSpec
from munirank.model.build import create_model, weibull_loglik


def _scipy_loglik(t, s, d, eta, alpha):
    """Weibull PH through scipy: rate exp(eta) <=> weibull_min(c=alpha, scale=exp(-eta/alpha)).
    Events: log f(t); censored: log S(t); delayed entry: minus log S(s)."""
    dist = stats.weibull_min(c=alpha, scale=np.exp(-eta / alpha))
    ll = np.where(d == 1, dist.logpdf(t), dist.logsf(t))
    return ll - np.where(s > 0, dist.logsf(s), 0.0)


@pytest.mark.parametrize("alpha", [0.6, 1.0, 1.7])
def test_loglik_matches_scipy_with_censoring_and_truncation(alpha):
    rng = np.random.default_rng(3)
    n = 400
    s = np.where(rng.random(n) < 0.3, rng.uniform(0.1, 1.0, n), 0.0)
    t = s + rng.uniform(0.05, 2.0, n)
    d = (rng.random(n) < 0.5).astype(float)
    eta = rng.normal(0, 0.7, n)
    ours = weibull_loglik(t, s, d, eta, alpha)
    np.testing.assert_allclose(ours, _scipy_loglik(t, s, d, eta, alpha), rtol=1e-10, atol=1e-12)


def test_model_potential_equals_numpy_loglik(tiny_episodes):
    """The vectorised PyTensor likelihood (sufficient statistics, delayed entry) equals the
    per-episode numpy likelihood summed, at an arbitrary parameter point."""
    model = create_model(tiny_episodes, ModelSpec())
    rng = np.random.default_rng(5)
    point = {
        "alpha_log__": np.log(1.3), "beta0": -0.4, "sigma_log__": np.log(0.35),
        "beta": rng.normal(0, 0.3, tiny_episodes.sizes["covariate"]),
        "gamma": rng.normal(0, 0.3, tiny_episodes.sizes["municipal_covariate"]),
        "u_raw": rng.normal(size=tiny_episodes.sizes["municipality"]),
    }
    (term,) = model.replace_rvs_by_values([model.potentials[0]])
    potential = model.compile_fn(term, inputs=model.value_vars)(point)
    scale = float(tiny_episodes.attrs["horizon_months"])
    u = _u_at(model, point)
    mu = tiny_episodes["z"].to_numpy() @ point["gamma"] + u
    from munirank.input.episodes import as_codes

    eta = -0.4 + tiny_episodes["x"].to_numpy() @ point["beta"] + mu[as_codes(tiny_episodes)]
    expected = weibull_loglik(tiny_episodes["exit"].to_numpy() / scale,
                              tiny_episodes["entry"].to_numpy() / scale,
                              tiny_episodes["event"].to_numpy(), eta, 1.3).sum()
    assert float(potential) == pytest.approx(expected, rel=1e-10)


def _u_at(model, point):
    """The municipality effects u at a point of the model's value variables."""
    (u,) = model.replace_rvs_by_values([model["u"]])
    return model.compile_fn(u, inputs=model.value_vars, on_unused_input="ignore")(point)


def test_centring_weights_are_the_datas_share_of_information(tiny_episodes):
    from munirank.model.build import centring_weights

    events = tiny_episodes["n_events"].to_numpy()
    w = centring_weights(events, ModelSpec())
    s2 = 0.5**2 * 2 * 0.4769362762044699**2  # HalfNormal(0.5)'s median, squared
    np.testing.assert_allclose(w, events * s2 / (1 + events * s2))
    assert ((w > 0) & (w < 1)).all() and np.all(np.diff(w[np.argsort(events)]) >= 0)
    np.testing.assert_array_equal(centring_weights(events, ModelSpec(parametrisation="partial")),
                                  w)
    switch = centring_weights(events, ModelSpec(parametrisation="switch"))
    assert set(switch) == {0.0, 1.0} and (events[switch == 1] >= 9).all()
    assert (events[switch == 0] <= 8).all()
    assert not centring_weights(events, ModelSpec(parametrisation="non_centred")).any()
    assert centring_weights(events, ModelSpec(parametrisation="centred")).all()


@pytest.mark.parametrize("parametrisation", ["partial", "switch", "centred"])
def test_parametrisations_are_the_same_model(tiny_episodes, parametrisation):
    """At the same effects u, a parametrisation's density and the non-centred one differ only by
    the Jacobian of u_raw = u / sigma against u_raw = u / sigma^(1-w) + w level: w log sigma
    per municipality."""
    from munirank.model.build import centring_weights

    spec = ModelSpec(parametrisation=parametrisation)
    model = create_model(tiny_episodes, spec)
    plain = create_model(tiny_episodes, ModelSpec(parametrisation="non_centred"))
    rng = np.random.default_rng(8)
    sigma = 0.4
    u = sigma * rng.normal(size=tiny_episodes.sizes["municipality"])
    w = centring_weights(tiny_episodes["n_events"].to_numpy(), spec)
    common = {"alpha_log__": np.log(1.2), "beta0": -0.3, "sigma_log__": np.log(sigma),
              "beta": rng.normal(0, 0.2, tiny_episodes.sizes["covariate"]),
              "gamma": rng.normal(0, 0.2, tiny_episodes.sizes["municipal_covariate"])}
    level = common["beta0"] + tiny_episodes["z"].to_numpy() @ common["gamma"]
    at = {**common, "u_raw": u / sigma ** (1 - w) + w * level}
    at_plain = {**common, "u_raw": u / sigma}
    np.testing.assert_allclose(_u_at(model, at), u)
    difference = model.compile_logp()(at) - plain.compile_logp()(at_plain)
    assert difference == pytest.approx(-w.sum() * np.log(sigma), rel=1e-9)


def test_every_municipality_is_in_the_model(tiny_episodes):
    model = create_model(tiny_episodes, ModelSpec())
    assert model.coords["municipality"] == tuple(tiny_episodes["municipality"].to_numpy())
    assert min(tiny_episodes["n_spells"].to_numpy()) < 10  # small ones are included too


@pytest.mark.parametrize("effect", ["normal", "zerosum", "student_t"])
def test_group_effect_variants_build(tiny_episodes, effect):
    model = create_model(tiny_episodes, ModelSpec(group_effect=effect))
    assert "u" in model.named_vars
    assert np.isfinite(model.compile_logp()(model.initial_point()))


# --- alternative baselines (issue 9) -------------------------------------------------------

def _censored_rows(seed=3, n=400):
    rng = np.random.default_rng(seed)
    s = np.where(rng.random(n) < 0.3, rng.uniform(0.1, 1.0, n), 0.0)
    t = s + rng.uniform(0.05, 2.0, n)
    d = (rng.random(n) < 0.5).astype(float)
    return t, s, d, rng.normal(0, 0.7, n)


def _scipy_censored(dist, t, s, d):
    ll = np.where(d == 1, dist.logpdf(t), dist.logsf(t))
    return ll - np.where(s > 0, dist.logsf(s), 0.0)


@pytest.mark.parametrize(("baseline", "make"), [
    ("exponential", lambda eta, a: stats.expon(scale=np.exp(-eta))),
    ("weibull", lambda eta, a: stats.weibull_min(c=a, scale=np.exp(-eta / a))),
    ("loglogistic", lambda eta, a: stats.fisk(c=a, scale=np.exp(-eta / a))),
    ("lognormal", lambda eta, a: stats.lognorm(s=1 / a, scale=np.exp(-eta / a))),
])
@pytest.mark.parametrize("alpha", [0.7, 1.6])
def test_baseline_loglik_matches_scipy(baseline, make, alpha):
    """S = Psi(eta + alpha log t): exponential, Weibull, log-logistic (fisk), log-normal."""
    from munirank.model.build import baseline_loglik

    t, s, d, eta = _censored_rows()
    ours = baseline_loglik(baseline, t, s, d, eta, alpha=alpha)
    np.testing.assert_allclose(ours, _scipy_censored(make(eta, alpha), t, s, d),
                               rtol=1e-9, atol=1e-10)


def test_piecewise_loglik_matches_integrated_hazard():
    """Piecewise exponential against scipy.integrate.quad of the hazard, per row."""
    from scipy import integrate

    from munirank.model.build import baseline_loglik

    t, s, d, eta = _censored_rows(n=60)
    cuts = np.array([0.125, 0.25, 0.5, 0.75])
    log_piece = np.array([0.3, -0.2, 0.5, -0.4])
    rates = np.exp(np.concatenate([[0.0], log_piece]))

    def hazard(x, e):
        return np.exp(e) * rates[np.searchsorted(cuts, x, side="left")]

    expected = [di * np.log(hazard(ti, ei)) - integrate.quad(
        hazard, si, ti, args=(ei,), points=cuts[(cuts > si) & (cuts < ti)], limit=200)[0]
        for ti, si, di, ei in zip(t, s, d, eta, strict=True)]
    ours = baseline_loglik("piecewise_exponential", t, s, d, eta, log_piece=log_piece,
                           cuts=cuts)
    np.testing.assert_allclose(ours, expected, rtol=1e-8, atol=1e-10)


def _alternative_point(model, episodes, rng):
    point = {"beta0": -0.4, "sigma_log__": np.log(0.35),
             "beta": rng.normal(0, 0.3, episodes.sizes["covariate"]),
             "gamma": rng.normal(0, 0.3, episodes.sizes["municipal_covariate"]),
             "u_raw": rng.normal(size=episodes.sizes["municipality"])}
    if "alpha" in model.named_vars:
        point["alpha_log__"] = np.log(1.3)
    if "log_piece" in model.named_vars:
        point["log_piece"] = rng.normal(0, 0.3, 4)
    return point


@pytest.mark.parametrize("baseline", ["exponential", "loglogistic", "lognormal",
                                      "piecewise_exponential"])
def test_alternative_potential_equals_pointwise_loglik(tiny_episodes, baseline):
    """The PyTensor likelihood of each alternative equals the numpy pointwise one summed
    (pointwise_loglik adds the months Jacobian, removed here)."""
    import xarray as xr

    from munirank.model.build import pointwise_loglik

    model = create_model(tiny_episodes, ModelSpec(baseline=baseline))
    point = _alternative_point(model, tiny_episodes, np.random.default_rng(5))
    (term,) = model.replace_rvs_by_values([model.potentials[0]])
    potential = model.compile_fn(term, inputs=model.value_vars, on_unused_input="ignore")(point)
    sd = ("chain", "draw")
    post = xr.Dataset(
        {"beta0": (sd, [[-0.4]]), "beta": ((*sd, "covariate"), point["beta"][None, None]),
         "gamma": ((*sd, "municipal_covariate"), point["gamma"][None, None]),
         "u": ((*sd, "municipality"), _u_at(model, point)[None, None])},
        coords={k: tiny_episodes[k].to_numpy()
                for k in ("municipality", "covariate", "municipal_covariate")})
    if "alpha_log__" in point:
        post["alpha"] = (sd, [[1.3]])
    if "log_piece" in point:
        post["log_piece"] = ((*sd, "piece"), point["log_piece"][None, None])
    ll = pointwise_loglik(post, tiny_episodes, baseline=baseline)
    jacobian = float(tiny_episodes["event"].sum()) * np.log(
        float(tiny_episodes.attrs["horizon_months"]))
    assert ll.dims == ("chain", "draw", "episode")
    assert float(potential) == pytest.approx(float(ll.sum()) + jacobian, rel=1e-9)
    assert np.isfinite(model.compile_logp()(model.initial_point()))


def test_weibull_pointwise_loglik_equals_baseline_loglik(tiny_episodes, tiny_posterior):
    from munirank.model.build import baseline_loglik, linear_predictor, pointwise_loglik

    fast = pointwise_loglik(tiny_posterior, tiny_episodes)
    assert fast.dims == ("chain", "draw", "episode")

    scale = float(tiny_episodes.attrs["horizon_months"])
    eta = linear_predictor(tiny_posterior, tiny_episodes).transpose("chain", "draw", "episode")
    flat = baseline_loglik("weibull", tiny_episodes["exit"].to_numpy() / scale,
                           tiny_episodes["entry"].to_numpy() / scale,
                           tiny_episodes["event"].to_numpy().astype(float),
                           eta.to_numpy().reshape(-1, eta.sizes["episode"]),
                           alpha=tiny_posterior["alpha"].to_numpy().reshape(-1, 1))
    jac = tiny_episodes["event"].to_numpy() * np.log(scale)
    np.testing.assert_allclose(fast.to_numpy().reshape(flat.shape), flat - jac, rtol=1e-10)


def test_linear_predictor_matches_coefficients_by_label(tiny_episodes, tiny_posterior):
    """eta = beta0 + x'beta + z_m'gamma + u_m per draw and episode, whatever the order of the
    posterior's covariate, municipal covariate and municipality coordinates."""
    from munirank.input.episodes import as_codes
    from munirank.model.build import linear_predictor

    post = tiny_posterior
    x, z = tiny_episodes["x"].to_numpy(), tiny_episodes["z"].to_numpy()
    codes = as_codes(tiny_episodes)
    b = post["beta"].transpose("chain", "draw", "covariate").to_numpy()
    g = post["gamma"].transpose("chain", "draw", "municipal_covariate").to_numpy()
    u = post["u"].transpose("chain", "draw", "municipality").to_numpy()
    by_hand = (post["beta0"].to_numpy()[..., None] + b @ x.T + (g @ z.T + u)[..., codes])
    eta = linear_predictor(post, tiny_episodes)
    assert eta.dims == ("chain", "draw", "episode")
    np.testing.assert_allclose(eta.to_numpy(), by_hand, rtol=1e-12)
    np.testing.assert_array_equal(eta["episode"], tiny_episodes["episode"])

    rng = np.random.default_rng(3)
    shuffled = post.isel(covariate=rng.permutation(post.sizes["covariate"]),
                         municipality=rng.permutation(post.sizes["municipality"]),
                         municipal_covariate=rng.permutation(post.sizes["municipal_covariate"]))
    assert not np.array_equal(shuffled["municipality"], post["municipality"])
    np.testing.assert_allclose(linear_predictor(shuffled, tiny_episodes).to_numpy(), by_hand,
                               rtol=1e-12)
    without = linear_predictor(shuffled, tiny_episodes, with_effect=False).to_numpy()
    np.testing.assert_allclose(without, by_hand - u[..., codes], rtol=1e-12, atol=1e-12)


def _graph_constants(model):
    from pytensor.graph.basic import Constant

    fgraph = model.logp_dlogp_function(ravel_inputs=True)._pytensor_function.maker.fgraph
    return [np.asarray(v.data).tobytes() for node in fgraph.toposort() for v in node.inputs
            if isinstance(v, Constant)]


def test_compiled_graph_does_not_depend_on_the_data(tiny_episodes, tmp_path):
    """Every data-dependent value is shared data, so two registers of the same shape give the
    same compiled graph (and PyTensor's compilation cache serves the second)."""
    from munirank.input.episodes import load_episodes
    from munirank.input.spec import load_spec
    from munirank.simulation.register import write_register

    other_dir = write_register("tiny", 2, tmp_path)
    other = load_episodes(other_dir / "spells.csv", load_spec(other_dir / "spec.toml"))
    assert not np.array_equal(other["n_events"], tiny_episodes["n_events"])
    first = _graph_constants(create_model(tiny_episodes, ModelSpec()))
    second = _graph_constants(create_model(other, ModelSpec()))
    assert first == second
