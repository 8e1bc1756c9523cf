"""The nested Laplace approximation (``--method laplace``) and the bench's agreement figures."""

import json

import numpy as np
import pandas as pd
import pymc as pm
import pytest
from scipy import integrate, stats

from munirank.input.spec import SamplingSpec
from munirank.model.laplace import hessian_from_gradient, laplace_posterior
from munirank.studies.bench import agreement, table_text


def test_hessian_with_a_diagonal_block_is_exact_on_a_quadratic():
    rng = np.random.default_rng(3)
    n_fixed, n_block = 3, 6
    n = n_fixed + n_block
    hess = np.zeros((n, n))
    a = rng.normal(size=(n_fixed, n_fixed))
    hess[:n_fixed, :n_fixed] = a @ a.T + n_fixed * np.eye(n_fixed)
    cross = rng.normal(size=(n_fixed, n_block))
    hess[:n_fixed, n_fixed:], hess[n_fixed:, :n_fixed] = cross, cross.T
    hess[n_fixed:, n_fixed:] = np.diag(rng.uniform(5, 9, n_block))
    x = rng.normal(size=n)
    got = hessian_from_gradient(lambda y: hess @ y, x, diagonal_block=np.arange(n_fixed, n))
    np.testing.assert_allclose(got, hess, rtol=1e-6, atol=1e-6)
    # a wrongly declared block is not silently exact: the check above can fail
    dense = hess.copy()
    dense[n_fixed, n_fixed + 1] = dense[n_fixed + 1, n_fixed] = 2.0
    wrong = hessian_from_gradient(lambda y: dense @ y, x, diagonal_block=np.arange(n_fixed, n))
    assert not np.allclose(wrong, dense)


def _normal_hierarchy(y, s):
    """y_m ~ N(u_m, s_m), u_m = sigma * u_raw_m: Gaussian given sigma, so Laplace is exact."""
    with pm.Model(coords={"municipality": range(len(y))}) as model:
        sigma = pm.HalfNormal("sigma", 1.0)
        u_raw = pm.Normal("u_raw", 0.0, 1.0, dims="municipality")
        u = pm.Deterministic("u", sigma * u_raw, dims="municipality")
        pm.Normal("y", u, s, observed=y, dims="municipality")
    return model


def test_nested_laplace_matches_quadrature_of_the_exact_marginal():
    rng = np.random.default_rng(7)
    s = rng.uniform(0.2, 1.0, 40)
    y = rng.normal(0, 0.5, 40) + rng.normal(0, s)
    spec = SamplingSpec(draws=4000, chains=2, seed=5)
    tree, _ = laplace_posterior(_normal_hierarchy(y, s), spec, var_names=["sigma", "u"])
    post = tree["posterior"].dataset
    assert post.attrs["laplace_converged"] == 1

    def density(sig):  # p(sigma | y) up to a constant: half-normal prior x marginal likelihood
        return stats.halfnorm.pdf(sig) * np.exp(
            stats.norm.logpdf(y, 0, np.sqrt(sig**2 + s**2)).sum() + 40)

    z = integrate.quad(density, 0, 5)[0]
    mean = integrate.quad(lambda v: v * density(v), 0, 5)[0] / z
    sd = np.sqrt(integrate.quad(lambda v: (v - mean) ** 2 * density(v), 0, 5)[0] / z)
    draws = post["sigma"].to_numpy().ravel()
    assert abs(draws.mean() - mean) < 0.05 * sd + 3 * sd / np.sqrt(len(draws)) + 0.02 * sd
    assert abs(draws.std() - sd) < 0.1 * sd
    # u_m given sigma is Gaussian with mean sigma^2 y / (sigma^2 + s^2): check one
    sig = draws
    expected = np.mean(sig**2 * y[0] / (sig**2 + s[0] ** 2))
    got = post["u"].isel(municipality=0).to_numpy().mean()
    assert abs(got - expected) < 0.02 + 4 * post["u"].isel(municipality=0).std().item() / 90


def test_laplace_fit_writes_outputs_and_flags_the_method(tmp_path, tiny_dir):
    from munirank import api

    out = tmp_path / "fit"
    result = api.fit(tiny_dir / "spells.csv", spec=tiny_dir / "spec.toml", out=out,
                     method="laplace", draws=500, chains=2, progressbar=False)
    diag = json.loads((out / "diagnostics.json").read_text())
    assert diag["method"] == "laplace"
    assert diag["laplace_grid_points"] >= 3
    assert diag["laplace_converged"] == 1 and diag["ess_bulk_min"] >= 400
    assert diag["converged"] and result.converged
    table = pd.read_csv(out / "municipalities.csv")
    top = next(c for c in table.columns if c.startswith("p_top"))
    k = int(top.removeprefix("p_top"))
    assert table[top].between(0, 1).all()
    assert np.isclose(table[top].sum(), k)


def test_agreement_and_table_text(tmp_path):
    rows = {"municipality": ["a", "b", "c"], "p_top10": [0.9, 0.5, 0.1],
            "p_bottom10": [0.0, 0.2, 0.7], "effect_months_mean": [-2.0, 0.0, 2.0],
            "effect_months_lo": [-3.0, -1.0, 1.0], "effect_months_hi": [-1.0, 1.0, 3.0],
            "rank_mean": [1.2, 2.0, 2.8]}
    for name, shift in (("x", 0.0), ("y", 0.03)):
        (tmp_path / name).mkdir()
        t = pd.DataFrame(rows)
        t["p_top10"] = t["p_top10"] - shift * np.array([1, 0, 0])
        t["effect_months_mean"] += shift * np.array([0, 10, 0])
        t.iloc[::-1].to_csv(tmp_path / name / "municipalities.csv", index=False)
    got = agreement(tmp_path / "y", tmp_path / "x")
    assert got["p_top_max_abs_diff"] == pytest.approx(0.03)
    assert got["effect_months_mean_max_abs_diff"] == pytest.approx(0.3)
    assert got["p_bottom_max_abs_diff"] == 0
    report = {"cases": {"nutpie": {"wall_seconds": 50.0, "ess_per_second": 30.0},
                        "pymc": {"error": "boom"}},
              "ratios": {"ess_per_second_nutpie_over_pymc": 5.0}, "agreement": {"laplace": got}}
    text = table_text(report)
    assert "failed: boom" in text and "ess_per_second_nutpie_over_pymc: 5.00" in text
