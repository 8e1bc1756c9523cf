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


def own_names_spec(spec_file, names=OWN_NAMES, keys=("group", "time", "event", "entry")):
    """A simulated register's spec with the data keys ``keys`` and the covariates renamed."""
    from munirank.input.spec import load_spec, spec_to_dict

    spec = spec_to_dict(load_spec(spec_file))
    data = spec["data"]
    for key in keys:
        data[key] = names[data[key]]
    data["municipal_table"] = "municipal.csv"
    cov = spec["covariates"]
    for key in ("individual", "municipal"):
        cov[key] = [OWN_NAMES[c] for c in cov[key]]
    return spec


@pytest.fixture(scope="session")
def own_names_dir(tiny_dir, tmp_path_factory):
    """The tiny register with the user's own column names everywhere, truth.csv included."""
    import pandas as pd
    import tomli_w


    out = tmp_path_factory.mktemp("own_names")
    for name in ("spells.csv", "municipal.csv", "truth.csv"):
        table = pd.read_csv(tiny_dir / name, dtype={"municipality": str})
        table.rename(columns=OWN_NAMES).to_csv(out / name, index=False)
    spec = own_names_spec(tiny_dir / "spec.toml")
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


#: The registers of the tiny-panel preset in Danish register names.
PANEL_NAMES = {"persons.csv": {"person_id": "pnr", "arrival": "indrejsedato",
                               "event_date": "selvforsoerget", "emigration": "udvandret",
                               "end_of_follow_up": "slutdato", "male": "mand", "age": "alder"},
               "residence.csv": {"person_id": "pnr", "municipality": "kommune", "from": "fra",
                                 "to": "til"},
               "municipal.csv": {"municipality": "kommune", "year": "aar",
                                 "unemployment": "ledighed"},
               "crosswalk.csv": {"old": "gl_kode", "new": "ny_kode", "date": "dato"}}


@pytest.fixture(scope="session")
def panel_dir(tmp_path_factory):
    """tiny-panel (seed 2) with its register form: calendar years and a reform."""
    from munirank.simulation.register import write_register

    return write_register("tiny-panel", 2, tmp_path_factory.mktemp("panel"),
                          register_form=True)


@pytest.fixture(scope="session")
def panel_dk(panel_dir, tmp_path_factory):
    """The tiny-panel registers in Danish names through ``munirank episodes``.

    Split at years, on the old municipalities (kommune, kommune_new beside), municipal table
    by year (``aar``); the episode and year columns then renamed (``forloeb``, ``kalenderaar``)
    in spells.csv and the spec fit reads, so that fit reads them by the spec's names.
    Returns the folder episodes wrote (spells.csv, spec.toml, municipal.csv).
    """
    import pandas as pd
    import tomli_w

    from munirank.cli import run
    from munirank.input.spec import load_spec, spec_to_dict

    registers = tmp_path_factory.mktemp("panel_dk")
    for name, names in PANEL_NAMES.items():
        pd.read_csv(panel_dir / name, dtype=str, keep_default_na=False).rename(
            columns=names).to_csv(registers / name, index=False)
    spec = {"data": {"group": "kommune", "time": "udgang", "event": "haendelse",
                     "entry": "indgang", "municipal_table": "municipal.csv",
                     "municipal_year": "aar", "crosswalk": "crosswalk.csv",
                     "crosswalk_level": "old", "crosswalk_columns": ["gl_kode", "ny_kode", "dato"]},
            "covariates": {"individual": ["mand", "alder"], "municipal": ["ledighed"]},
            "ranking": {"top_k": 3},
            "registers": {"id": "pnr", "arrival": "indrejsedato",
                          "event_date": "selvforsoerget", "end_dates": ["udvandret", "slutdato"],
                          "municipality": "kommune", "from_date": "fra", "to_date": "til",
                          "split_years": True}}
    (registers / "spec.toml").write_text(tomli_w.dumps(spec))
    out = registers / "episoder"
    assert run(["episodes", str(registers / "persons.csv"), str(registers / "residence.csv"),
                "--spec", str(registers / "spec.toml"), "--out", str(out)]) == 0
    spells = pd.read_csv(out / "spells.csv", dtype={"kommune": str})
    spells.rename(columns={"episode": "forloeb", "year": "kalenderaar"}).to_csv(
        out / "spells.csv", index=False)
    fit_spec = spec_to_dict(load_spec(out / "spec.toml"))
    fit_spec["data"] |= {"episode": "forloeb", "year": "kalenderaar"}
    (out / "spec.toml").write_text(tomli_w.dumps(fit_spec))
    return out


@pytest.fixture(scope="session")
def split_tiny(tiny_dir, tmp_path_factory):
    """The tiny register split at 1 January, with its municipal table repeated every year.

    Arrival dates are made up (seeded); ``episode`` numbers the unsplit episodes. Returns
    the folder: spells.csv (pieces), municipal.csv (by year, constant over years),
    spec.toml (fit reads the pieces by year) and unsplit.toml (the tiny spec, paths absolute).
    """
    import pandas as pd
    import tomli_w

    from munirank.input.spec import load_spec, spec_to_dict
    from munirank.input.years import split_at_years

    out = tmp_path_factory.mktemp("split_tiny")
    spells = pd.read_csv(tiny_dir / "spells.csv", dtype={"municipality": str})
    spells["episode"] = np.arange(len(spells)) + 1
    persons = spells["person_id"].unique()
    days = np.random.default_rng(3).integers(0, 2000, len(persons))
    arrival = pd.Series(pd.Timestamp("2001-01-01") + pd.to_timedelta(days, "D"), index=persons)
    split = split_at_years(spells, arrival, time_unit="months", id="person_id", start="start",
                           stop="stop", event="event", year="year")
    split.to_csv(out / "spells.csv", index=False)
    municipal = pd.read_csv(tiny_dir / "municipal.csv", dtype={"municipality": str})
    years = range(int(split["year"].min()), int(split["year"].max()) + 1)
    pd.concat([municipal.assign(year=y) for y in years]).to_csv(out / "municipal.csv",
                                                                 index=False)
    spec = spec_to_dict(load_spec(tiny_dir / "spec.toml"))
    spec["data"]["municipal_table"] = str(tiny_dir / "municipal.csv")
    (out / "unsplit.toml").write_text(tomli_w.dumps(spec))
    spec["data"] |= {"municipal_table": "municipal.csv", "municipal_year": "year",
                     "year": "year", "episode": "episode"}
    (out / "spec.toml").write_text(tomli_w.dumps(spec))
    return out


@pytest.fixture(scope="session")
def periods_dir(own_names_dir, tmp_path_factory):
    """The tiny register in Danish names measured twice: period column ``maaling``.

    Persons are drawn into measurement 2007 or 2009 (seeded); municipality 'M20' has no
    episodes in 2007 (present in one period only). spec.toml sets ``[data] period``.
    """
    import pandas as pd
    import tomli_w

    from munirank.input.spec import load_spec, spec_to_dict

    out = tmp_path_factory.mktemp("periods")
    spells = pd.read_csv(own_names_dir / "spells.csv", dtype={"kommune": str})
    persons = spells["pnr"].unique()
    later = pd.Series(np.random.default_rng(5).random(len(persons)) < 0.5, index=persons)
    spells["maaling"] = np.where(later.loc[spells["pnr"]].to_numpy(), 2009, 2007)
    spells = spells[~((spells["kommune"] == "M20") & (spells["maaling"] == 2007))]
    spells.to_csv(out / "spells.csv", index=False)
    pd.read_csv(own_names_dir / "municipal.csv").to_csv(out / "municipal.csv", index=False)
    spec = spec_to_dict(load_spec(own_names_dir / "spec.toml"))
    spec["data"]["period"] = "maaling"
    (out / "spec.toml").write_text(tomli_w.dumps(spec))
    return out


@pytest.fixture(scope="session")
def period_fit(periods_dir, tmp_path_factory):
    """A short fit of the two-period register (2 x 100 draws, not gated)."""
    from munirank.cli import run

    out = tmp_path_factory.mktemp("period_fit") / "fit"
    assert run(["fit", str(periods_dir / "spells.csv"), "--spec",
                str(periods_dir / "spec.toml"), "--out", str(out), "--draws", "100", "--tune",
                "100", "--chains", "2", "--allow-unconverged", "--quiet"]) == 0
    return out


#: The tiny-outcomes register in a user's own names (Danish): columns and outcome labels.
OUTCOME_NAMES = {**OWN_NAMES, "outcome": "udfald"}
OUTCOME_LABELS = {"job": "selvforsoergelse", "education": "uddannelse"}


@pytest.fixture(scope="session")
def outcomes_dir(tmp_path_factory):
    """tiny-outcomes (seed 1), in Danish names: udfald = selvforsoergelse / uddannelse."""
    import pandas as pd
    import tomli_w

    from munirank.simulation.register import write_register

    sim = write_register("tiny-outcomes", 1, tmp_path_factory.mktemp("outcomes_sim"))
    out = tmp_path_factory.mktemp("outcomes")
    spells = pd.read_csv(sim / "spells.csv", dtype={"municipality": str})
    spells["outcome"] = spells["outcome"].map(OUTCOME_LABELS)
    spells.rename(columns=OUTCOME_NAMES).to_csv(out / "spells.csv", index=False)
    for name in ("municipal.csv", "truth.csv", "truth_outcomes.csv"):
        table = pd.read_csv(sim / name, dtype={"municipality": str})
        if "outcome" in table:
            table["outcome"] = table["outcome"].map(OUTCOME_LABELS)
        table.rename(columns=OWN_NAMES).to_csv(out / name, index=False)
    spec = own_names_spec(sim / "spec.toml", OUTCOME_NAMES,
                          ("group", "time", "event", "entry", "outcome"))
    spec["data"]["outcomes"] = [OUTCOME_LABELS[v] for v in spec["data"]["outcomes"]]
    (out / "spec.toml").write_text(tomli_w.dumps(spec))
    return out


@pytest.fixture(scope="session")
def outcome_episodes(outcomes_dir):
    from munirank.input.episodes import load_episodes
    from munirank.input.spec import load_spec

    return load_episodes(outcomes_dir / "spells.csv", load_spec(outcomes_dir / "spec.toml"))


def fake_outcome_posterior(episodes: xr.Dataset, *, chains: int = 2, draws: int = 40,
                           seed: int = 0) -> xr.Dataset:
    """Synthetic draws of the competing-outcomes model's parameters (no sampling)."""
    rng = np.random.default_rng(seed)
    labels = episodes["outcome"].to_numpy().tolist()
    k, n_m = len(labels), episodes.sizes["municipality"]
    n_x, n_z = episodes.sizes["covariate"], episodes.sizes["municipal_covariate"]
    sd = ("chain", "draw")
    shape = (chains, draws)
    return xr.Dataset(
        {"alpha": ((*sd, "outcome"), [1.1, 0.9] + 0.01 * rng.normal(size=(*shape, k))),
         "beta0": ((*sd, "outcome"), [-1.0, -2.0] + 0.01 * rng.normal(size=(*shape, k))),
         "beta": ((*sd, "outcome", "covariate"), 0.1 * rng.normal(size=(*shape, k, n_x))),
         "gamma": ((*sd, "outcome", "municipal_covariate"),
                   0.1 * rng.normal(size=(*shape, k, n_z))),
         "sigma": ((*sd, "outcome"), np.full((*shape, k), 0.3)),
         "rho": ((*sd, "outcome_pair"), 0.3 + 0.05 * rng.normal(size=(*shape, 1))),
         "u": ((*sd, "municipality", "outcome"), 0.3 * rng.normal(size=(*shape, n_m, k)))},
        coords={"chain": np.arange(chains), "draw": np.arange(draws),
                "municipality": episodes["municipality"].to_numpy(),
                "covariate": episodes["covariate"].to_numpy(),
                "municipal_covariate": episodes["municipal_covariate"].to_numpy(),
                "outcome": labels, "outcome_pair": [f"{labels[0]}~{labels[1]}"]})
