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
    from munirank.simulation.register import write_register

    return write_register("tiny", 1, tmp_path_factory.mktemp("tiny"))


#: munirank's column names in a simulated register -> a user's own (Danish register names).
OWN_NAMES = {"person_id": "pnr", "municipality": "kommune", "start": "indgang",
             "stop": "udgang", "event": "haendelse", "male": "mand", "age": "alder",
             "unemployment": "ledighed"}


@pytest.fixture(scope="session")
def own_names_dir(tiny_dir, tmp_path_factory):
    """The tiny register with the user's own column names everywhere, truth.csv included."""
    import pandas as pd
    import tomli_w

    from munirank.input.spec import load_spec, spec_to_dict

    out = tmp_path_factory.mktemp("own_names")
    for name in ("spells.csv", "municipal.csv", "truth.csv"):
        table = pd.read_csv(tiny_dir / name, dtype={"municipality": str})
        table.rename(columns=OWN_NAMES).to_csv(out / name, index=False)
    spec = spec_to_dict(load_spec(tiny_dir / "spec.toml"))
    data = spec["data"]
    for key in ("group", "time", "event", "entry"):
        data[key] = OWN_NAMES[data[key]]
    data["municipal_table"] = "municipal.csv"
    cov = spec["covariates"]
    for key in ("individual", "municipal"):
        cov[key] = [OWN_NAMES[c] for c in cov[key]]
    (out / "spec.toml").write_text(tomli_w.dumps(spec))
    return out


def assert_keeps_a_users_files(args: list[str], folder, written: str) -> None:
    """``munirank ARGS --out FOLDER`` refuses a folder of the user's; --overwrite keeps it.

    ``written`` is a file the command writes there (issue 27).
    """
    from munirank.cli import run

    folder.mkdir()
    (folder / "notes.txt").write_text("mine\n")
    assert run([*args, "--out", str(folder)]) == 2
    assert sorted(p.name for p in folder.iterdir()) == ["notes.txt"]
    assert run([*args, "--out", str(folder), "--overwrite"]) == 0
    assert (folder / "notes.txt").read_text() == "mine\n" and (folder / written).is_file()


@pytest.fixture(scope="session")
def tiny_spec(tiny_dir):
    from munirank.input.spec import load_spec

    return load_spec(tiny_dir / "spec.toml")


@pytest.fixture(scope="session")
def tiny_episodes(tiny_dir, tiny_spec):
    from munirank.input.episodes import load_episodes

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
