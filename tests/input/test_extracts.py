"""``munirank episodes`` end to end: files in the user's own (Danish) names, bad input, outputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import tomli_w
from histories import DATA, DAYS_PER_MONTH, EPISODE, EXPECTED, PERSONS, REGISTERS, RESIDENCE

from munirank.cli import run
from munirank.input.episodes import load_episodes
from munirank.input.spec import load_spec

MUNICIPAL = pd.DataFrame({"kommune": ["A", "B", "C", "D"], "ledighed": [5.0, 6.5, 7.0, 9.0]})
CROSSWALK = pd.DataFrame({"gl_kode": ["A", "B", "C"], "ny_kode": ["N1", "N1", "N2"],
                          "dato": ["2001-06-01"] * 3})


def _spec(folder, *, data=None, registers=None, min_cell=1) -> dict:
    spec = {"data": DATA | {"municipal_table": "kommuner.csv"} | (data or {}),
            "covariates": {"individual": ["mand"], "municipal": ["ledighed"]},
            "outcome": {"horizon_months": 6.0}, "disclosure": {"min_cell": min_cell},
            "registers": REGISTERS | {"follow_up_months": 365 / DAYS_PER_MONTH}
            | (registers or {})}
    if spec["data"]["municipal_table"] is None:
        del spec["data"]["municipal_table"]
        spec["covariates"]["municipal"] = []
    (folder / "spec.toml").write_text(tomli_w.dumps(spec))
    return spec


@pytest.fixture
def registers(tmp_path):
    """personer.csv, ophold.csv, kommuner.csv, reform.csv and spec.toml in one folder."""
    folder = tmp_path / "in"
    folder.mkdir()
    PERSONS.to_csv(folder / "personer.csv", index=False)
    RESIDENCE.to_csv(folder / "ophold.csv", index=False)
    MUNICIPAL.to_csv(folder / "kommuner.csv", index=False)
    CROSSWALK.to_csv(folder / "reform.csv", index=False)
    _spec(folder)
    return folder


def _args(folder, out, *, persons="personer.csv", residence="ophold.csv") -> list[str]:
    return ["episodes", str(folder / persons), str(folder / residence), "--spec",
            str(folder / "spec.toml"), "--out", str(out)]


def test_episodes_writes_the_table_fit_reads_and_a_summary(registers, tmp_path, capsys):
    out = tmp_path / "ud"
    assert run(_args(registers, out)) == 0
    said = capsys.readouterr().out
    assert "11 persons, 8 with episodes; 10 episodes, 2 events" in said
    assert "keep it on the secure server" in said
    assert sorted(p.name for p in out.iterdir()) == [
        ".munirank.json", "municipal.csv", "spec.toml", "spells.csv", "summary.json",
        "summary.txt"]
    spells = pd.read_csv(out / "spells.csv")
    pd.testing.assert_frame_equal(spells[EPISODE], EXPECTED, check_dtype=False)
    assert pd.read_csv(out / "municipal.csv")["kommune"].tolist() == ["A", "B", "C"]
    episodes = load_episodes(out / "spells.csv", load_spec(out / "spec.toml"))  # what fit does
    assert episodes.sizes == {"episode": 10, "covariate": 1, "municipality": 3,
                              "municipal_covariate": 1}
    assert float(episodes["exit"].max()) == pytest.approx(365 / DAYS_PER_MONTH)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["persons"] == {"in": 11, "with_episodes": 8, "dropped_no_time_at_risk": 1,
                                  "dropped_no_residence": 1,
                                  "dropped_no_residence_in_follow_up": 1}
    assert summary["episodes"]["censored"]["move"] == 1
    assert summary["events"]["on_move_date"] == 1
    assert "secure server" in (out / "summary.txt").read_text()


def test_the_summary_blanks_counts_under_min_cell(registers, tmp_path):
    _spec(registers, min_cell=5)
    assert run(_args(registers, tmp_path / "ud")) == 0
    summary = json.loads((tmp_path / "ud" / "summary.json").read_text())
    assert summary["persons"]["in"] == 11 and summary["persons"]["with_episodes"] == 8
    assert summary["persons"]["dropped_no_residence"] is None
    assert summary["episodes"]["events"] is None and summary["episodes"]["out"] == 10
    assert set(summary["episodes"]["censored"].values()) == {None}
    text = (tmp_path / "ud" / "summary.txt").read_text()
    assert "fewer than 5" in text and " -\n" in text
    for pnr in ("mover", "movday", "nores", "arrday", "ingap"):  # aggregate only
        assert pnr not in text and pnr not in json.dumps(summary)


def test_crosswalk_both_ways_through_the_command(registers, tmp_path):
    _spec(registers, data={"crosswalk": "reform.csv", "crosswalk_level": "new",
                           "crosswalk_columns": ["gl_kode", "ny_kode", "dato"],
                           "municipal_table": None}, registers={"follow_up_months": 12})
    assert run(_args(registers, tmp_path / "ny")) == 0
    new = pd.read_csv(tmp_path / "ny" / "spells.csv")
    # A and B became N1, so the mover's move from A to B is a move within N1: one episode
    mover = new[new["pnr"] == "mover"]
    assert mover[["kommune", "indgang", "udgang", "haendelse"]].values.tolist() == [
        ["N1", 0, 200, 1]]
    assert set(new["kommune"]) == {"N1", "N2"} and len(new) == len(EXPECTED) - 1
    spec = load_spec(tmp_path / "ny" / "spec.toml")
    assert spec.data.crosswalk is None and spec.registers.split_years is False
    _spec(registers, data={"crosswalk": "reform.csv", "crosswalk_level": "old",
                           "crosswalk_columns": ["gl_kode", "ny_kode", "dato"]})
    assert run(_args(registers, tmp_path / "gl")) == 0
    old = pd.read_csv(tmp_path / "gl" / "spells.csv")
    assert old[EPISODE[:2]].values.tolist() == EXPECTED[EPISODE[:2]].values.tolist()
    assert old["kommune_new"].tolist() == old["kommune"].map(
        {"A": "N1", "B": "N1", "C": "N2"}).tolist()


def test_a_municipal_table_by_year_is_checked_against_the_split_episodes(registers, tmp_path,
                                                                         capsys):
    years = pd.concat([MUNICIPAL.assign(aar=y) for y in (2001, 2002)], ignore_index=True)
    years.to_csv(registers / "kommuner.csv", index=False)
    _spec(registers, data={"municipal_year": "aar"}, registers={"split_years": True})
    assert run(_args(registers, tmp_path / "ud")) == 0
    spells = pd.read_csv(tmp_path / "ud" / "spells.csv")
    assert set(spells["year"]) == {2001}  # everything lies in 2001 here
    spec = load_spec(tmp_path / "ud" / "spec.toml")  # what fit reads: the pieces, by year
    assert spec.covariates.municipal == ("ledighed",)
    assert (spec.data.municipal_table, spec.data.municipal_year) == ("municipal.csv", "aar")
    assert (spec.data.year, spec.data.episode, spec.data.parent) == ("year", "episode", None)
    copied = pd.read_csv(tmp_path / "ud" / "municipal.csv")
    assert copied.columns.tolist() == ["kommune", "aar", "ledighed"]
    assert sorted(zip(copied["kommune"], copied["aar"], strict=True)) == [
        (k, y) for k in "ABC" for y in (2001, 2002)]  # all years of those with episodes
    episodes = load_episodes(tmp_path / "ud" / "spells.csv", spec)
    assert episodes.sizes["cell"] == 3 and episodes["n_spells"].sum() == len(EXPECTED)
    years[years["aar"] == 2002].to_csv(registers / "kommuner.csv", index=False)
    assert run(_args(registers, tmp_path / "ud2")) == 2
    err = capsys.readouterr().err
    assert "kommuner.csv" in err and "'aar'" in err and "A 2001" in err
    _spec(registers, data={"municipal_year": "aar"})
    assert run(_args(registers, tmp_path / "ud3")) == 2
    assert "split_years = true" in capsys.readouterr().err


def _edit(folder, name: str, change) -> None:
    path = folder / name
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    change(table)
    table.to_csv(path, index=False)


def _set(row: int, column: str, value: str):
    def change(t):
        t.loc[row, column] = value
    return change


def _append(row: dict):
    def change(t):
        t.loc[len(t)] = [row.get(c, "") for c in t.columns]
    return change


BAD_INPUT = {
    "overlapping periods": ("ophold.csv", _append({"pnr": "mover", "kommune": "C",
                                                   "fra": "2001-02-01", "til": "2001-03-01"}),
                            "ophold.csv", "fra", "rows 1, 17", "overlapping"),
    "to before from": ("ophold.csv", _set(4, "til", "2000-12-31"), "ophold.csv", "til",
                       "rows 5", "to date before the from date"),
    "event before arrival": ("personer.csv", _set(3, "selvforsoerget", "2001-02-01"),
                             "personer.csv", "selvforsoerget", "rows 4", "before the arrival"),
    "unknown municipality": ("ophold.csv", _set(5, "kommune", "Q"), "ophold.csv", "kommune",
                             "rows 6", "unknown municipality code 'Q'"),
    "date that does not parse": ("ophold.csv", _set(2, "fra", "01/01/2001"), "ophold.csv",
                                 "fra", "rows 3", "does not parse"),
    "duplicate person": ("personer.csv", _append({"pnr": "gap", "indrejsedato": "2001-01-01",
                                                  "slutdato": "2001-12-01", "mand": "1"}),
                         "personer.csv", "pnr", "rows 3, 12", "more than once"),
    "missing arrival date": ("personer.csv", _set(1, "indrejsedato", ""), "personer.csv",
                             "indrejsedato", "rows 2", "missing values"),
    "missing column": ("ophold.csv", lambda t: t.drop(columns="til", inplace=True),
                       "ophold.csv", "til", "", "required column is missing"),
    "municipal value missing": ("kommuner.csv", _set(1, "ledighed", ""), "kommuner.csv",
                                "ledighed", "rows 2", "missing values"),
    "crosswalk with two municipalities on one date": (
        "reform.csv", _append({"gl_kode": "A", "ny_kode": "N2", "dato": "2001-06-01"}),
        "reform.csv", "gl_kode", "rows 1, 4", "maps to 2 municipalities"),
}


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_one_line_naming_file_column_rows_and_nothing_is_written(
        case, registers, tmp_path, capsys):
    name, change, file, column, rows, words = BAD_INPUT[case]
    if name == "reform.csv":
        _spec(registers, data={"crosswalk": "reform.csv",
                               "crosswalk_columns": ["gl_kode", "ny_kode", "dato"],
                               "municipal_table": None})
    _edit(registers, name, change)
    before = sorted(p.name for p in tmp_path.iterdir())
    assert run(_args(registers, tmp_path / "ud")) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("munirank: error: ")
    assert file in err and f"column {column!r}" in err and rows in err and words in err
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_stata_and_parquet_registers_give_dates_as_dates(registers, tmp_path):
    import pyreadstat

    persons = PERSONS.copy()
    for c in ("indrejsedato", "selvforsoerget", "udvandret", "slutdato"):
        persons[c] = pd.to_datetime(persons[c]).dt.date  # Stata dates
    pyreadstat.write_dta(persons, str(registers / "personer.dta"))
    residence = RESIDENCE.assign(fra=pd.to_datetime(RESIDENCE["fra"]),
                                 til=pd.to_datetime(RESIDENCE["til"]))
    residence.to_parquet(registers / "ophold.parquet")
    assert run(_args(registers, tmp_path / "ud", persons="personer.dta",
                     residence="ophold.parquet")) == 0
    spells = pd.read_csv(tmp_path / "ud" / "spells.csv")
    np.testing.assert_allclose(spells["udgang"], EXPECTED["udgang"])


def test_episodes_keeps_a_users_files_and_never_writes_over_its_input(registers, tmp_path):
    from conftest import assert_keeps_a_users_files

    args = _args(registers, tmp_path / "unused")[:-2]
    assert_keeps_a_users_files(args, tmp_path / "user", "spells.csv")
    assert run([*args, "--out", str(registers), "--overwrite"]) == 2


def test_the_readme_worked_example_is_what_episodes_writes(tmp_path):
    import re
    from pathlib import Path

    root = Path(__file__).parents[2]
    readme = (root / "README.md").read_text()
    blocks = dict(re.findall(r"<!-- example: (\S+) -->\n```text\n(.*?)```", readme, re.S))
    example = root / "docs" / "examples" / "registers"
    for name in ("persons.csv", "residence.csv"):
        assert blocks[name] == (example / name).read_text(), name
    assert run(["episodes", str(example / "persons.csv"), str(example / "residence.csv"),
                "--spec", str(example / "spec.toml"), "--out", str(tmp_path / "ud")]) == 0
    assert blocks["spells.csv"] == (tmp_path / "ud" / "spells.csv").read_text()
