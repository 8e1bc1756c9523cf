"""The calendar-time preset: exact events, its register form, its truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from munirank.cli import run
from munirank.errors import InputError
from munirank.simulation.presets import preset
from munirank.simulation.register import simulate_register


def test_events_match_the_cumulative_hazard_that_changes_at_new_year(panel_dir):
    """Sum of H over the pieces = expected events (the model with its year's z, u_old)."""
    p = preset("tiny-panel")
    spells = pd.read_csv(panel_dir / "spells.csv")
    municipal = pd.read_csv(panel_dir / "municipal.csv")
    old = pd.read_csv(panel_dir / "truth_old.csv").set_index("municipality")
    raw = municipal.set_index(["municipality", "year"])["unemployment"]
    z = (raw - raw.mean()) / raw.std(ddof=0)  # per SD over the panel's cells
    cell = pd.MultiIndex.from_frame(spells[["municipality", "year"]])
    eta = (0.4 * spells["male"] - 0.03 * (spells["age"] - 30.0)
           + p.municipal["unemployment"] * z.loc[cell].to_numpy()
           + old.loc[spells["municipality"], "true_log_hr"].to_numpy())
    hazard = p.base_rate_per_month * np.exp(eta) * (spells["stop"] ** p.alpha
                                                    - spells["start"] ** p.alpha)
    events = spells["event"].sum()
    assert events > 3000
    assert abs(hazard.sum() - events) < 4 * np.sqrt(events)  # Poisson: E[D] = E[sum of H]
    late = spells["year"] >= 2005  # and so in the later years alone

    assert abs(hazard[late].sum() - spells["event"][late].sum()) < 4 * np.sqrt(events)


def test_the_register_form_gives_back_the_pieces_through_episodes(panel_dir, tmp_path):
    out = tmp_path / "ep"
    assert run(["episodes", str(panel_dir / "persons.csv"), str(panel_dir / "residence.csv"),
                "--spec", str(panel_dir / "spec.toml"), "--out", str(out)]) == 0
    want, got = pd.read_csv(panel_dir / "spells.csv"), pd.read_csv(out / "spells.csv")
    assert len(got) == len(want)
    for c in ("person_id", "municipality", "municipality_new", "event", "episode", "year",
              "male", "age"):
        assert (got[c].to_numpy() == want[c].to_numpy()).all(), c
    np.testing.assert_allclose(got[["start", "stop"]], want[["start", "stop"]], atol=1e-9)
    assert pd.read_csv(out / "municipal.csv").equals(pd.read_csv(panel_dir / "municipal.csv"))


def test_truth_counts_unsplit_episodes_and_nests_old_in_new(panel_dir):
    spells = pd.read_csv(panel_dir / "spells.csv")
    truth = pd.read_csv(panel_dir / "truth.csv")
    old = pd.read_csv(panel_dir / "truth_old.csv")
    crosswalk = pd.read_csv(panel_dir / "crosswalk.csv")
    assert truth["n_spells"].sum() == old["n_spells"].sum() == spells["episode"].nunique()
    assert dict(zip(old["municipality"], old["municipality_new"], strict=True)) == dict(
        zip(crosswalk["old"], crosswalk["new"], strict=True))
    assert sorted(truth["true_rank"]) == list(range(1, len(truth) + 1))
    assert len(truth) < len(old) == 40
    # the new municipality's effect in months is over all its old ones' episodes
    weighted = (old["true_effect_months"] * old["n_spells"]).groupby(
        old["municipality_new"]).sum() / old.groupby("municipality_new")["n_spells"].sum()
    np.testing.assert_allclose(weighted.loc[truth["municipality"]],
                               truth["true_effect_months"], rtol=1e-10)
    table = pd.read_csv(panel_dir / "municipal.csv")
    assert set(zip(spells["municipality"], spells["year"], strict=True)) <= set(
        zip(table["municipality"], table["year"], strict=True))


def test_the_calendar_time_preset_is_written_not_simulated_alone():
    with pytest.raises(InputError, match="calendar time"):
        simulate_register("tiny-panel", seed=1)
