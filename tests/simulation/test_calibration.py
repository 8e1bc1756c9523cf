"""The calibration check against the published Danish figures."""

from importlib import resources

import numpy as np
import pandas as pd
import pytest

from munirank.simulation.calibration import (
    calibration_table,
    check_command,
    cumulative_by_permit_year,
    explained_share,
    outcome_shares,
    structure_table,
)
from munirank.simulation.presets import preset
from munirank.simulation.register import write_register


def _frame(outcomes: list[str], male: list[int]) -> pd.DataFrame:
    n = len(outcomes)
    return pd.DataFrame({"person_id": np.arange(1, n + 1), "start": 0.0,
                         "stop": np.full(n, 10.0),
                         "event": [int(o != "none") for o in outcomes], "outcome": outcomes,
                         "male": male, "permit_year": 2004, "permit_week": 1})


def test_outcome_shares_on_known_frame():
    df = _frame(["self_support"] * 3 + ["education"] + ["none"] * 6, [1] * 5 + [0] * 5)
    assert outcome_shares(df) == {"self_support": 30.0, "education": 10.0, "neither": 60.0}
    table = calibration_table(df)
    row = table.set_index("group").loc["men / self_support"]
    assert row["simulated"] == pytest.approx(60.0)
    assert row["difference"] == pytest.approx(60.0 - 36.8)
    assert not row["within_2pp"]
    assert set(table["figure"]) == {"table1", "table2", "table3"}
    assert len(table) == 9 + 21


def test_cumulative_share_uses_calendar_windows():
    # permit in week 1 of 2002: the end of 2003 is ~103 weeks later, of 2004 ~155 weeks later
    weeks = {1: 100.0, 2: 110.0, 3: 150.0, 4: 160.0, 5: 400.0}
    df = pd.DataFrame({"person_id": list(weeks), "start": 0.0, "stop": list(weeks.values()),
                       "event": [1, 1, 1, 1, 0], "permit_year": 2002, "permit_week": 1})
    got = cumulative_by_permit_year(df, {"2002": 3}, per_month=52.0 / 12.0)["2002"]
    assert got.tolist() == pytest.approx([20.0, 60.0, 80.0])


def test_explained_share_reproduces_the_published_figure():
    table = pd.read_csv(resources.files("munirank.bundled") / "akf2006_table4.csv")
    truth = table.rename(columns={"effect_months": "true_effect_months",
                                  "observed_months": "true_observed_months"})
    assert explained_share(truth) == pytest.approx(0.72, abs=0.005)
    toy = pd.DataFrame({"true_effect_months": [1.0, -1.0, 1.0, -1.0],
                        "true_observed_months": [2.0, -2.0, 2.0, -2.0]})
    assert explained_share(toy) == pytest.approx(0.75)


@pytest.fixture(scope="module")
def dk_folder(tmp_path_factory):
    return write_register("dk-1999-2005", 1, tmp_path_factory.mktemp("dk"))


def test_dk_seed_1_is_within_two_points(dk_folder, capsys):
    assert check_command(dk_folder, "dk-1999-2005") == 0
    printed = capsys.readouterr().out
    assert "30 of 30 figures within 2 points" in printed
    assert "explained share" in printed
    spells = pd.read_csv(dk_folder / "spells.csv", keep_default_na=False)
    table = calibration_table(spells, preset("dk-1999-2005"))
    assert table["within_2pp"].all()
    assert table["difference"].abs().max() < 2.0


def test_check_fails_when_figures_are_off(dk_folder, tmp_path, capsys):
    spells = pd.read_csv(dk_folder / "spells.csv", keep_default_na=False)
    spells["event"] = 0
    spells["outcome"] = "none"
    spells.to_csv(tmp_path / "spells.csv", index=False)
    (tmp_path / "truth.csv").write_bytes((dk_folder / "truth.csv").read_bytes())
    assert check_command(tmp_path, "dk-1999-2005") == 1


def test_dk_structure_is_as_published(dk_folder):
    spells = pd.read_csv(dk_folder / "spells.csv", keep_default_na=False)
    truth = pd.read_csv(dk_folder / "truth.csv")
    table = structure_table(truth, spells, preset("dk-1999-2005")).set_index("figure")
    assert 0.6 < table.loc["explained share (ranked)", "simulated"] < 0.85
    assert 10 < table.loc["fastest - slowest, months", "simulated"] < 20
    assert table.loc["completed, % of spells", "simulated"] == pytest.approx(34.6, abs=1.5)


def test_presets_without_published_figures_pass_with_a_summary(tmp_path, capsys):
    out = write_register("tiny", 1, tmp_path / "t")
    assert check_command(out, "tiny") == 0
    assert "no published figures" in capsys.readouterr().out
