"""The model on cells: exactness of the split likelihood, the nested density, centring."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from munirank.input.episodes import load_episodes
from munirank.input.spec import ModelSpec, PriorSpec, load_spec
from munirank.model.build import create_model, linear_predictor
from munirank.model.cells import (
    centred_by_information,
    event_weighted,
    prior_median,
    unit_parents,
)


def _random_points(model, n: int, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    points = []
    for k in range(n):
        ip = model.initial_point(random_seed=k)
        points.append({name: v + rng.normal(0.0, 0.3, np.shape(v)) for name, v in ip.items()})
    return points


def _assert_same_density(a, b, points) -> None:
    fa, fb = a.compile_logp(), b.compile_logp()
    ga, gb = a.compile_dlogp(), b.compile_dlogp()
    assert [v.name for v in a.value_vars] == [v.name for v in b.value_vars]
    for point in points:
        assert fa(point) == pytest.approx(fb(point), rel=1e-10, abs=0)
        np.testing.assert_allclose(ga(point), gb(point), rtol=1e-10,
                                   atol=1e-10 * np.abs(ga(point)).max())


@pytest.fixture(scope="module")
def tiny_split_and_whole(split_tiny, tiny_dir):
    split_spec = load_spec(split_tiny / "spec.toml")
    whole_spec = load_spec(split_tiny / "unsplit.toml")
    return (load_episodes(split_tiny / "spells.csv", split_spec), split_spec,
            load_episodes(tiny_dir / "spells.csv", whole_spec), whole_spec)


def test_split_likelihood_equals_the_unsplit_when_z_is_constant_over_years(
        tiny_split_and_whole):
    split, split_spec, whole, whole_spec = tiny_split_and_whole
    assert "cell" in split.dims and "cell" not in whole.dims
    assert split.sizes["episode"] > 2 * whole.sizes["episode"]
    a, b = create_model(whole, whole_spec.model), create_model(split, split_spec.model)
    _assert_same_density(a, b, _random_points(a, 4, seed=1))


@pytest.fixture(scope="module")
def nested_pair(split_tiny, tiny_dir, tmp_path_factory):
    """tiny nested in a made-up reform: split with the table by year, and unsplit."""
    import tomli_w

    from munirank.input.spec import spec_to_dict

    out = tmp_path_factory.mktemp("nested")
    parent = {f"M{i:02d}": f"N{(i - 1) // 3 + 1}" for i in range(1, 21)}
    pieces = pd.read_csv(split_tiny / "spells.csv", dtype={"municipality": str})
    pieces["municipality_new"] = pieces["municipality"].map(parent)
    pieces.to_csv(out / "pieces.csv", index=False)
    whole = pd.read_csv(tiny_dir / "spells.csv", dtype={"municipality": str})
    whole["municipality_new"] = whole["municipality"].map(parent)
    whole.to_csv(out / "whole.csv", index=False)
    for name, source in (("pieces", split_tiny / "spec.toml"),
                         ("whole", split_tiny / "unsplit.toml")):
        spec = spec_to_dict(load_spec(source))
        spec["data"]["parent"] = "municipality_new"
        if name == "pieces":
            spec["data"]["municipal_table"] = str(split_tiny / "municipal.csv")
        (out / f"{name}.toml").write_text(tomli_w.dumps(spec))
    return out


def test_nested_split_likelihood_equals_the_nested_unsplit(nested_pair):
    episodes = {}
    for name in ("pieces", "whole"):
        spec = load_spec(nested_pair / f"{name}.toml")
        episodes[name] = (load_episodes(nested_pair / f"{name}.csv", spec), spec)
    (split, split_spec), (whole, whole_spec) = episodes["pieces"], episodes["whole"]
    assert whole.sizes["cell"] == 20 < split.sizes["cell"]
    assert split.sizes["municipality"] == whole.sizes["municipality"] == 7
    a, b = create_model(whole, whole_spec.model), create_model(split, split_spec.model)
    _assert_same_density(a, b, _random_points(a, 3, seed=2))


def test_the_nested_density_is_the_models_with_its_jacobian(nested_pair):
    """In (u, u_old) coordinates the sampled density is N(u|0,s) N(u_old|u[parent], s_old)."""
    spec = load_spec(nested_pair / "whole.toml")
    episodes = load_episodes(nested_pair / "whole.csv", spec)
    model = create_model(episodes, spec.model)
    terms = [model[n] for n in ("u_raw", "u_old_raw", "u_old_prior")]
    inputs = model.value_vars
    f = model.compile_fn(model.logp(vars=terms, jacobian=False), inputs=inputs,
                         point_fn=False, on_unused_input="ignore")
    values = model.compile_fn(model.replace_rvs_by_values(
        [model["u"], model["u_old"], model["sigma"], model["sigma_old"]]), inputs=inputs,
        point_fn=False, on_unused_input="ignore")
    parent = unit_parents(episodes)
    events = np.bincount(episodes["episode_cell"].to_numpy(),
                         weights=episodes["event"].to_numpy().astype(float))
    centred = centred_by_information(events, spec.model, spec.model.priors.sigma_old_sigma)
    assert 0 < centred.sum() < len(centred)  # both kinds of old municipality
    for point in _random_points(model, 3, seed=3):
        args = [point[v.name] for v in inputs]
        u, u_old, sigma, sigma_old = values(*args)
        k = np.bincount(parent[centred], minlength=len(u))
        precision = 1 / sigma**2 + k / sigma_old**2
        log_jacobian = (-0.5 * np.log(precision).sum()  # u = m + P^(-1/2) eps
                        + (~centred).sum() * np.log(sigma_old))  # u_old = u + sigma_old e
        plain = (stats.norm.logpdf(u, 0, sigma).sum()
                 + stats.norm.logpdf(u_old, u[parent], sigma_old).sum())
        assert f(*args) == pytest.approx(plain + log_jacobian, rel=1e-10)


def test_linear_predictor_of_cells_uses_each_pieces_year_and_old_effect(nested_pair):
    from conftest import fake_posterior

    spec = load_spec(nested_pair / "pieces.toml")
    ep = load_episodes(nested_pair / "pieces.csv", spec)
    post = fake_posterior(ep)
    rng = np.random.default_rng(5)
    post["u_old"] = (("chain", "draw", "old_municipality"),
                     rng.normal(size=(2, 50, ep.sizes["old_municipality"])))
    post = post.assign_coords(old_municipality=ep["old_municipality"].to_numpy())
    eta = linear_predictor(post, ep).to_numpy()
    cell = ep["episode_cell"].to_numpy()
    old = pd.Index(ep["old_municipality"].to_numpy()).get_indexer(
        ep["cell_unit"].to_numpy()[cell])
    want = (post["beta0"].to_numpy()[..., None]
            + post["beta"].to_numpy() @ ep["x"].to_numpy().T
            + post["gamma"].to_numpy() @ ep["z_cell"].to_numpy()[cell].T
            + post["u_old"].to_numpy()[..., old])
    np.testing.assert_allclose(eta, want, rtol=1e-12)


def test_centring_by_information_and_event_weighted_levels():
    spec = ModelSpec(priors=PriorSpec(sigma_old_sigma=0.25))
    s_old = prior_median(0.25)
    info = np.array([0.0, 0.9, 1.0, 50.0]) / s_old**2
    assert centred_by_information(info, spec, 0.25).tolist() == [False, False, True, True]
    assert centred_by_information(info, ModelSpec(parametrisation="centred"), 0.25).all()
    assert not centred_by_information(info, ModelSpec(parametrisation="non_centred"),
                                      0.25).any()
    assert prior_median(0.5) == pytest.approx(stats.halfnorm(scale=0.5).median())
    z = np.array([[1.0], [3.0], [5.0], [7.0]])
    level = event_weighted(z, np.array([1.0, 3.0, 0.0, 0.0]), np.array([0, 0, 1, 1]), 2)
    assert level.ravel().tolist() == [2.5, 6.0]  # by events; equal weights without any


def test_pieces_without_a_table_by_year_keep_the_default_model(split_tiny, tiny_dir):
    """Pieces counted once, segments the municipalities: the unsplit density and effects."""
    from dataclasses import replace

    from conftest import fake_posterior
    from munirank.posterior.effects import duration_effects

    whole_spec = load_spec(split_tiny / "unsplit.toml")
    spec = replace(whole_spec, data=replace(whole_spec.data, episode="episode"))
    pieces = load_episodes(split_tiny / "spells.csv", spec)
    whole = load_episodes(tiny_dir / "spells.csv", whole_spec)
    assert "cell" not in pieces.dims and "piece_weight" in pieces
    assert (pieces["n_spells"].to_numpy() == whole["n_spells"].to_numpy()).all()
    a, b = create_model(whole, whole_spec.model), create_model(pieces, spec.model)
    _assert_same_density(a, b, _random_points(a, 2, seed=4))
    post = fake_posterior(whole)
    np.testing.assert_allclose(duration_effects(post, pieces)["effect_months"],
                               duration_effects(post, whole)["effect_months"], atol=1e-10)


@pytest.mark.parametrize("effect", ["student_t", "zerosum"])
def test_other_effect_distributions_nest_with_the_plain_parametrisation(nested_pair, effect):
    from dataclasses import replace

    spec = load_spec(nested_pair / "pieces.toml")
    episodes = load_episodes(nested_pair / "pieces.csv", spec)
    model = create_model(episodes, replace(spec.model, group_effect=effect))
    assert {"u", "u_old", "sigma_old"} <= set(model.named_vars)
    logp = model.compile_logp()
    assert np.isfinite(logp(model.initial_point(random_seed=1)))
