"""Registers measured in two periods with known correlated truth (``dk-two-periods``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from munirank.cli import run
from munirank.input.spec import load_spec
from munirank.simulation.periods import simulate_periods, true_effects


@pytest.fixture(scope="module")
def two_periods():
    return simulate_periods("dk-two-periods", 1, scale=0.1)


def test_two_periods_share_municipalities_and_their_municipal_table(two_periods):
    spells, truth = two_periods["spells"], two_periods["truth"]
    assert sorted(spells["period"].unique()) == ["2007", "2009"]
    first = set(spells[spells["period"] == "2007"]["municipality"])
    second = set(spells[spells["period"] == "2009"]["municipality"])
    assert second - first == {"Small 197", "Small 198", "Small 199"}
    assert len(two_periods["municipal"]) == 271
    # person ids do not repeat across periods
    ids = spells.groupby("period")["person_id"].agg(["min", "max"])
    assert ids.loc["2009", "min"] > ids.loc["2007", "max"]
    assert len(truth) == 271 + 268 and list(truth.columns[:2]) == ["municipality", "period"]
    for _, rows in truth.groupby("period"):
        assert sorted(rows["true_rank"]) == list(range(1, len(rows) + 1))


def test_true_effects_correlate_as_the_preset_says(two_periods):
    truth = two_periods["truth"].pivot(index="municipality", columns="period",
                                       values="true_log_hr").dropna()
    r = np.corrcoef(truth["2007"], truth["2009"])[0, 1]
    assert 0.65 < r < 0.92
    u = true_effects(20000, 3, 0.4, 0.8, np.random.default_rng(1))
    assert np.std(u, axis=0) == pytest.approx([0.4] * 3, rel=0.03)
    assert np.corrcoef(u.T)[0, 2] == pytest.approx(0.8, abs=0.02)


def test_true_changes_match_the_truth_per_period(two_periods):
    changes, truth = two_periods["truth_changes"], two_periods["truth"]
    assert len(changes) == 268
    t = truth.set_index(["period", "municipality"])
    row = changes.iloc[5]
    m = row["municipality"]
    change = t.loc[("2009", m), "true_effect_months"] - t.loc[("2007", m), "true_effect_months"]
    assert row["true_change_months"] == pytest.approx(change)
    assert row["true_improved"] == (change < 0)
    both = t.loc[("2007", m), "true_top10"] and t.loc[("2009", m), "true_top10"]
    assert row["true_top10_both"] == both
    assert changes["true_top10_both"].sum() <= 10


def test_simulate_command_writes_a_spec_with_the_period(tmp_path, capsys):
    out = tmp_path / "sim"
    assert run(["simulate", "--preset", "dk-two-periods", "--scale", "0.1", "--out",
                str(out)]) == 0
    spec = load_spec(out / "spec.toml")
    assert spec.data.period == "period" and spec.data.time_unit == "weeks"
    assert (out / "truth_changes.csv").is_file()
    spells = pd.read_csv(out / "spells.csv", dtype={"period": str})
    assert set(spells["period"]) == {"2007", "2009"}
    assert run(["simulate", "--preset", "dk-two-periods", "--register-form", "--out",
                str(tmp_path / "form")]) == 2
    assert "register form" in capsys.readouterr().err
