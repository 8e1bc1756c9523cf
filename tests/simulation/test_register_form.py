"""The register form of every preset: `episodes` on it gives back the simulated episodes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from munirank.cli import run
from munirank.input.registers import register_episodes
from munirank.input.spec import spec_from_dict
from munirank.simulation.register import simulate_register
from munirank.simulation.register_form import REGISTERS, simulate_register_form

EPISODE = ["person_id", "municipality", "start", "stop", "event"]


@pytest.mark.parametrize("preset", ["tiny", "no-2012-2018", "dk-1999-2005"])
def test_episodes_on_the_register_form_give_back_the_simulated_episodes(preset, tmp_path):
    sim, ep = tmp_path / "sim", tmp_path / "ep"
    assert run(["simulate", "--preset", preset, "--seed", "3", "--register-form",
                "--out", str(sim)]) == 0
    assert run(["episodes", str(sim / "persons.csv"), str(sim / "residence.csv"), "--spec",
                str(sim / "spec.toml"), "--out", str(ep)]) == 0
    want = pd.read_csv(sim / "spells.csv").sort_values(["person_id", "start"],
                                                       kind="stable").reset_index(drop=True)
    got = pd.read_csv(ep / "spells.csv")
    assert len(got) == len(want)
    for c in ("person_id", "municipality", "event"):
        assert (got[c].to_numpy() == want[c].to_numpy()).all(), c
    np.testing.assert_allclose(got["start"], want["start"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(got["stop"], want["stop"], rtol=0, atol=1e-9)
    covariates = [c for c in want.columns if c not in (*EPISODE, "outcome")]
    pd.testing.assert_frame_equal(got[covariates], want[covariates], check_dtype=False)
    crosswalk = pd.read_csv(sim / "crosswalk.csv")  # old municipalities, the new one beside
    new = dict(zip(crosswalk["old"], crosswalk["new"], strict=True))
    assert (got["municipality_new"] == got["municipality"].map(new)).all()
    assert pd.read_csv(ep / "municipal.csv").equals(pd.read_csv(sim / "municipal.csv").loc[
        lambda t: t["municipality"].isin(set(want["municipality"]))].reset_index(drop=True))


def _tiny_register(seed: int):
    spells = simulate_register("tiny", seed=seed)["spells"]
    persons, residence = simulate_register_form(spells, np.random.default_rng(seed))
    return spells.sort_values(["person_id", "start"]).reset_index(drop=True), persons, residence


def _spec(**registers):
    return spec_from_dict({"data": {"entry": "start"}, "registers": REGISTERS | registers})


def test_a_follow_up_limit_censors_like_clipping_the_episodes():
    spells, persons, residence = _tiny_register(6)
    r = register_episodes(persons, residence, _spec(follow_up_months=24.0))
    want = spells[spells["start"] < 24.0].reset_index(drop=True)
    event = (want["event"] == 1) & (want["stop"] <= 24.0)
    np.testing.assert_allclose(r.episodes["stop"], np.minimum(want["stop"], 24.0), atol=1e-9)
    assert (r.episodes["event"].to_numpy() == event.to_numpy()).all()
    assert r.counts["censored"]["follow_up"] == int(((want["stop"] >= 24.0) & ~event).sum())
    assert r.counts["events_after_follow_up"] == int(spells["event"].sum() - event.sum())


def test_reported_on_the_new_municipalities_the_events_and_time_stay_the_same(tmp_path):
    assert run(["simulate", "--preset", "tiny", "--register-form", "--out",
                str(tmp_path / "sim")]) == 0
    spells = pd.read_csv(tmp_path / "sim" / "spells.csv")
    crosswalk = pd.read_csv(tmp_path / "sim" / "crosswalk.csv")
    persons = pd.read_csv(tmp_path / "sim" / "persons.csv")
    residence = pd.read_csv(tmp_path / "sim" / "residence.csv")
    from munirank.input.crosswalk import check_crosswalk

    r = register_episodes(persons, residence, spec_from_dict(
        {"data": {"entry": "start", "crosswalk_level": "new"}, "registers": REGISTERS}),
        crosswalk=check_crosswalk(crosswalk))
    ep = r.episodes
    assert set(ep["municipality"]) <= set(crosswalk["new"])
    assert ep["event"].sum() == spells["event"].sum()
    assert (ep["stop"] - ep["start"]).sum() == pytest.approx(
        (spells["stop"] - spells["start"]).sum(), rel=1e-12)
    moves_within = len(spells) - len(ep)  # moves between old municipalities of one new one
    assert moves_within > 0 and r.counts["residence_rows_read_as_successor"] > 0


def test_the_register_form_leaves_the_simulated_register_as_it_was(tmp_path):
    assert run(["simulate", "--preset", "tiny", "--out", str(tmp_path / "a")]) == 0
    assert run(["simulate", "--preset", "tiny", "--register-form", "--out",
                str(tmp_path / "b")]) == 0
    for name in ("spells.csv", "municipal.csv", "truth.csv"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    assert sorted(p.name for p in (tmp_path / "b").iterdir()) == [
        ".munirank.json", "crosswalk.csv", "municipal.csv", "persons.csv", "residence.csv",
        "spec.toml", "spells.csv", "truth.csv"]
