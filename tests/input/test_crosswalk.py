"""Crosswalks of municipal reforms: both levels, chains, codes merged away, bad crosswalks."""

from __future__ import annotations

import pandas as pd
import pytest
from histories import persons_table, residence_table, spec

from munirank.errors import InputError
from munirank.input.crosswalk import apply_crosswalk, check_crosswalk
from munirank.input.registers import Sources, register_episodes

# the reform's columns in the user's own names (as in a Statistics Denmark code table)
NAMES = ("gl_kode", "ny_kode", "dato")
CROSSWALK = pd.DataFrame({"gl_kode": ["A1", "A2", "A3", "C"], "ny_kode": ["N1", "N1", "N2", "C"],
                          "dato": ["2007-01-01"] * 4})
PERSONS = persons_table([(1, "2005-01-01", None, None, "2009-01-01", 0),
                         (2, "2005-01-01", None, None, "2009-01-01", 1),
                         (3, "2005-01-01", None, None, "2009-01-01", 0)])
RESIDENCE = residence_table([
    (1, "A1", "2005-01-01", "2006-06-01"), (1, "A2", "2006-06-01", "2008-01-01"),
    (1, "N1", "2008-01-01", None),                     # moved within the new N1
    (2, "A3", "2005-01-01", "2007-06-01"), (2, "N2", "2007-06-01", None),  # a renamed unit
    (3, "B", "2005-01-01", "2008-01-01"), (3, "C", "2008-01-01", None),    # unchanged units
])


def _build(persons=PERSONS, residence=RESIDENCE, *, level="new", known=None):
    s = spec({"time_unit": "months", "crosswalk_level": level, "crosswalk_columns": NAMES},
             follow_up_months=None)
    cw = check_crosswalk(CROSSWALK, file="cw.csv", columns=NAMES)
    return register_episodes(persons, residence, s, crosswalk=cw, known=known,
                             sources=Sources("p.csv", "r.csv"))


def _codes(ep: pd.DataFrame, *cols: str) -> list[list[str]]:
    return ep[["pnr", *cols, "exit_reason"]].astype(str).values.tolist()


def test_new_municipalities_make_a_stay_across_the_reform_one_episode():
    r = _build(known=["N1", "N2", "B", "C"])
    assert _codes(r.episodes, "kommune") == [
        ["1", "N1", "end:slutdato"], ["2", "N2", "end:slutdato"], ["3", "B", "move"],
        ["3", "C", "end:slutdato"]]
    assert r.counts["residence_rows_merged"] == 3


def test_old_municipalities_are_kept_with_their_new_one_beside():
    r = _build(PERSONS.iloc[1:], RESIDENCE.iloc[3:], level="old")
    assert r.episodes[["pnr", "kommune", "kommune_new"]].values.tolist() == [
        [2, "A3", "N2"], [3, "B", "B"], [3, "C", "C"]]
    days = (pd.Timestamp("2009-01-01") - pd.Timestamp("2005-01-01")).days
    assert r.episodes["udgang"].iloc[0] == pytest.approx(days / (365.25 / 12))


def test_old_municipalities_refuse_periods_in_a_merged_one_after_the_reform():
    with pytest.raises(InputError) as info:
        _build(level="old")
    err = info.value
    assert (err.file, err.column, err.rows) == ("r.csv", "kommune", [3])
    assert "'N1' was formed on 2007-01-01 from 2 old ones (A1, A2)" in str(err)


def test_a_code_merged_away_is_read_as_its_successor_after_the_reform():
    # registers that kept the old codes after the reform: A2 no longer exists in 2008
    residence = RESIDENCE.assign(kommune=["A1", "A2", "A2", "A3", "A3", "B", "C"])
    new = _build(residence=residence, known=["N1", "N2", "B", "C"])
    assert _codes(new.episodes, "kommune") == _codes(_build().episodes, "kommune")
    assert new.counts["residence_rows_read_as_successor"] == 2
    old = _build(PERSONS.iloc[:2], residence.iloc[:5], level="old")
    assert old.episodes[["kommune", "kommune_new"]].values.tolist() == [
        ["A1", "N1"], ["A2", "N1"], ["A3", "N2"]]


def test_apply_crosswalk_both_ways_and_through_a_chain():
    args = {"code": "kommune", "date": "fra", "columns": NAMES}
    new = apply_crosswalk(RESIDENCE, CROSSWALK, **args)
    assert new["kommune"].tolist() == ["N1", "N1", "N1", "N2", "N2", "B", "C"]
    old = apply_crosswalk(RESIDENCE.iloc[3:], CROSSWALK, level="old", **args)
    assert old["kommune"].tolist() == ["A3", "A3", "B", "C"]
    assert old["kommune_new"].tolist() == ["N2", "N2", "B", "C"]
    chain = pd.concat([CROSSWALK, pd.DataFrame({"gl_kode": ["N1"], "ny_kode": ["Z"],
                                                "dato": ["2010-01-01"]})])
    table = pd.DataFrame({"kommune": ["A1", "N1", "N1", "Z", "A1"],
                          "fra": ["2005-01-01", "2008-01-01", "2011-01-01", "2011-01-01",
                                  "2011-01-01"]})
    assert apply_crosswalk(table, chain, **args)["kommune"].tolist() == ["Z"] * 5


def test_a_code_mapped_to_two_municipalities_on_one_date_is_refused():
    cw = pd.concat([CROSSWALK, pd.DataFrame({"gl_kode": ["A2"], "ny_kode": ["N2"],
                                             "dato": ["2007-01-01"]})], ignore_index=True)
    with pytest.raises(InputError) as info:
        check_crosswalk(cw, file="cw.csv", columns=NAMES)
    err = info.value
    assert (err.file, err.column, err.rows) == ("cw.csv", "gl_kode", [2, 5])
    assert "'A2' maps to 2 municipalities on 2007-01-01" in str(err)
    twice = pd.concat([CROSSWALK, CROSSWALK.iloc[[0]]], ignore_index=True)
    assert len(check_crosswalk(twice, columns=NAMES).old) == 4  # a repeated row is no ambiguity
    later = pd.concat([CROSSWALK, CROSSWALK.iloc[[1]].assign(ny_kode="N2", dato="2010-01-01")])
    assert len(check_crosswalk(later, columns=NAMES).old) == 5  # another date, another reform


def test_bad_crosswalk_dates_and_columns():
    bad = CROSSWALK.assign(dato=["2007-01-01", "1/1/2007", "2007-01-01", "2007-01-01"])
    with pytest.raises(InputError, match="does not parse") as info:
        check_crosswalk(bad, file="cw.csv", columns=NAMES)
    assert (info.value.column, info.value.rows) == ("dato", [2])
    with pytest.raises(InputError, match="required column is missing") as info:
        check_crosswalk(CROSSWALK, file="cw.csv")
    assert info.value.column == "old"
