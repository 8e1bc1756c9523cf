"""The convergence statistics against arviz_stats, and the gate."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

from munirank.checking import diagnostics as dg


def _chains(seed: int, chains: int = 4, draws: int = 400) -> xr.Dataset:
    """AR(1) chains of rising autocorrelation, with ties, a constant and a stuck chain."""
    rng = np.random.default_rng(seed)
    p = 24
    phi = np.linspace(0.0, 0.95, p)
    x = np.zeros((chains, draws, p))
    noise = rng.normal(size=(chains, draws, p))
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + noise[:, t]
    x[..., 5] = np.round(x[..., 5])
    x[..., 6] = 1.0
    x[-1, :, 7] += 3.0 if chains > 1 else 0.0
    return xr.Dataset({"a": (("chain", "draw", "k"), x[..., :20]),
                       "b": (("chain", "draw"), x[..., 20])})


@pytest.mark.parametrize(("seed", "chains", "draws"), [(1, 4, 400), (2, 2, 101), (3, 1, 300)])
def test_statistics_equal_arviz_stats(seed, chains, draws):
    import arviz_stats as azs

    ds = _chains(seed, chains, draws)
    ours = dg.by_variable(ds, ["a", "b", "missing"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # arviz_stats on the constant
        ref = {"rhat": azs.rhat(ds), "ess_bulk": azs.ess(ds, method="bulk"),
               "ess_tail": azs.ess(ds, method="tail")}
    for stat, reference in ref.items():
        for v in ("a", "b"):
            np.testing.assert_allclose(np.ravel(ours[stat][v]), np.ravel(reference[v].values),
                                       rtol=1e-12, equal_nan=True, err_msg=f"{stat} {v}")


def test_the_gate_names_the_weakest_parameter_and_counts_divergences():
    ds = _chains(4)
    tree = xr.DataTree.from_dict({
        "posterior": ds[["b"]].assign(u=ds["a"].isel(k=slice(0, 4)).rename(k="municipality")),
        "sample_stats": xr.Dataset({"diverging": (("chain", "draw"),
                                                  np.zeros((4, 400), bool))})})
    out = dg.convergence(tree, var_names=["b", "u"])
    assert out["ess_bulk_min_parameter"] in ("b", "u")
    assert out["ess_bulk_min"] == pytest.approx(min(out["ess_bulk_min_effects"],
                                                    float(dg.by_variable(
                                                        tree["posterior"].dataset,
                                                        ["b"])["ess_bulk"]["b"][0])))
    assert out["divergences"] == 0 and out["converged"] == (
        out["rhat_max"] <= 1.01 and out["ess_bulk_min"] >= 400)
