"""Shared fixtures: a simulated tiny register and synthetic posteriors (no sampling)."""

from __future__ import annotations

import matplotlib
import numpy as np
import pytest
import xarray as xr

matplotlib.use("Agg")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """The tiny preset, seed 1: spells.csv, municipal.csv, truth.csv, spec.toml."""
    from munirank.simulate import write_register

    return write_register("tiny", 1, tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="session")
def tiny_spec(tiny_dir):
    from munirank.spec import load_spec

    return load_spec(tiny_dir / "spec.toml")


@pytest.fixture(scope="session")
def tiny_episodes(tiny_dir, tiny_spec):
    from munirank.data import load_episodes

    return load_episodes(tiny_dir / "spells.csv", tiny_spec)


def fake_posterior(episodes: xr.Dataset, *, chains: int = 2, draws: int = 50,
                   sigma: float = 0.3, seed: int = 0) -> xr.Dataset:
    """Synthetic posterior draws with the model's variable names and dims."""
    rng = np.random.default_rng(seed)
    n_m = episodes.sizes["municipality"]
    n_x = episodes.sizes["covariate"]
    n_z = episodes.sizes["municipal_covariate"]
    sd = ("chain", "draw")
    u = sigma * rng.normal(size=(chains, draws, n_m))
    return xr.Dataset(
        {
            "alpha": (sd, 1.1 + 0.01 * rng.normal(size=(chains, draws))),
            "beta0": (sd, -0.5 + 0.01 * rng.normal(size=(chains, draws))),
            "beta": ((*sd, "covariate"), 0.2 + 0.01 * rng.normal(size=(chains, draws, n_x))),
            "gamma": ((*sd, "municipal_covariate"), rng.normal(size=(chains, draws, n_z)) * 0.1),
            "sigma": (sd, np.full((chains, draws), sigma)),
            "u": ((*sd, "municipality"), u),
        },
        coords={"chain": np.arange(chains), "draw": np.arange(draws),
                "municipality": episodes["municipality"].to_numpy(),
                "covariate": episodes["covariate"].to_numpy(),
                "municipal_covariate": episodes["municipal_covariate"].to_numpy()},
    )


@pytest.fixture
def tiny_posterior(tiny_episodes):
    return fake_posterior(tiny_episodes)
