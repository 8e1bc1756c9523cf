import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from munirank.cli import run

CONTRACT_COLUMNS = [
    "municipality", "n_spells", "n_events", "small_cell", "effect_months_mean",
    "effect_months_median", "effect_months_lo", "effect_months_hi", "observed_months_mean",
    "expected_months_mean", "log_hr_mean", "log_hr_lo", "log_hr_hi", "p_faster", "rank_mean",
    "rank_median", "rank_lo", "rank_hi", "shrinkage",
]


def test_simulate_writes_a_ready_to_fit_folder(tmp_path):
    assert run(["simulate", "--preset", "tiny", "--seed", "2", "--out", str(tmp_path / "s")]) == 0
    names = sorted(p.name for p in (tmp_path / "s").iterdir())
    assert names == [".munirank.json", "municipal.csv", "spec.toml", "spells.csv", "truth.csv"]


def test_usage_error_is_one_line_and_exit_2(capsys):
    assert run(["fit"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "error" in err


def test_unknown_preset_names_the_option_and_the_known_presets(tmp_path, capsys):
    assert run(["simulate", "--preset", "bad", "--out", str(tmp_path / "s")]) == 2
    assert capsys.readouterr().err.strip() == (
        "munirank: error: option --preset: unknown preset 'bad'; known: tiny, dk-1999-2005, "
        "no-2012-2018, dk-two-periods, tiny-outcomes, dk-outcomes")
    assert not (tmp_path / "s").exists()


def test_missing_data_file_exit_2_nothing_written(tmp_path, tiny_dir, capsys):
    out = tmp_path / "fit"
    code = run(["fit", str(tmp_path / "nope.csv"), "--spec", str(tiny_dir / "spec.toml"),
                "--out", str(out)])
    assert code == 2
    assert "nope.csv" in capsys.readouterr().err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_short_fit_writes_the_contract(tmp_path, tiny_dir):
    """A short real fit: files and columns of DESIGN.md section 4 (convergence not asked)."""
    out = tmp_path / "fit"
    code = run(["fit", str(tiny_dir / "spells.csv"), "--spec", str(tiny_dir / "spec.toml"),
                "--out", str(out), "--draws", "200", "--tune", "300", "--chains", "2",
                "--quiet", "--allow-unconverged"])
    assert code == 0
    table = pd.read_csv(out / "municipalities.csv")
    assert set(CONTRACT_COLUMNS) <= set(table.columns)
    assert {"p_top5", "p_bottom5"} <= set(table.columns)  # tiny ranks a top 5
    assert len(table) == 20
    assert table["p_top5"].sum() == pytest.approx(5.0, abs=1e-6)
    assert (table["rank_lo"] <= table["rank_mean"]).all()
    assert (table["rank_mean"] <= table["rank_hi"]).all()
    diag = json.loads((out / "diagnostics.json").read_text())
    for key in ("rhat_max", "ess_bulk_min", "ess_tail_min", "divergences", "converged",
                "sampler", "method", "chains", "draws", "wall_seconds"):
        assert key in diag
    run_info = json.loads((out / "run.json").read_text())
    assert {"versions", "seed", "spec_hash", "data_hash", "timings"} <= set(run_info)
    covs = pd.read_csv(out / "covariates.csv")
    assert set(covs["covariate"]) == {"male", "age", "unemployment"}
    tree = xr.open_datatree(out / "posterior.nc")
    for node in tree.subtree:
        assert "episode" not in node.dataset.dims
    assert tree["posterior"].dataset["u"].dims == ("chain", "draw", "municipality")
    assert np.isfinite(tree["derived"].dataset["effect_months"]).all()


@pytest.mark.parametrize(("key", "value", "instead"), [
    ("method", "pathfinder", "use laplace, a nested Laplace approximation"),
    ("sampler", "numpyro", "use nutpie (the default) or pymc"),
])
def test_a_spec_asking_for_a_dropped_choice_gets_one_line(tmp_path, tiny_dir, capsys, key, value,
                                                          instead):
    spec = tmp_path / "spec.toml"
    spec.write_text((tiny_dir / "spec.toml").read_text() + f'\n[sampling]\n{key} = "{value}"\n')
    out = tmp_path / "fit"
    code = run(["fit", str(tiny_dir / "spells.csv"), "--spec", str(spec), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and not out.exists()
    assert "\n" not in err and err.startswith(f"munirank: error: {spec}, column 'sampling.{key}'")
    assert f"{value} is no longer offered" in err and instead in err
    assert run(["fit", str(tiny_dir / "spells.csv"), "--spec", str(tiny_dir / "spec.toml"),
                "--out", str(out), f"--{key}", value]) == 2
    assert "invalid choice" in capsys.readouterr().err and not out.exists()
