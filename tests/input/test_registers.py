"""Register extracts to episodes: the rules on hand-made histories (Danish column names)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from histories import (
    DAYS_PER_MONTH,
    EPISODE,
    EXPECTED,
    PERSONS,
    RESIDENCE,
    spec,
)

from munirank.errors import InputError
from munirank.input.registers import Sources, register_episodes


def _build(persons=PERSONS, residence=RESIDENCE, *, data=None, known=None, **registers):
    return register_episodes(persons, residence, spec(data, **registers), known=known,
                             sources=Sources("p.csv", "r.csv"))


def test_hand_made_histories_give_the_episodes_written_out():
    ep = _build().episodes
    got = ep[EPISODE].assign(exit_reason=ep["exit_reason"].astype(str))
    pd.testing.assert_frame_equal(got, EXPECTED, check_dtype=False)
    assert ep["mand"].tolist() == [1, 1, 0, 1, 1, 0, 1, 0, 1, 1]
    assert list(ep.columns) == [*EPISODE, "mand"]  # roles dropped, covariates carried


def test_counts_say_what_happened():
    c = _build().counts
    assert c["persons_in"] == 11 and c["persons_with_episodes"] == 8
    assert c["persons_dropped"] == {"no_time_at_risk": 1, "no_residence": 1,
                                    "no_residence_in_follow_up": 1}
    assert c["episodes_out"] == 10 and c["events"] == 2
    assert c["events_on_move_date"] == 1          # movday: counted where the person moved from
    assert c["events_on_arrival_date"] == 1       # arrday
    assert c["events_after_follow_up"] == 1       # limit
    assert c["events_after_end_of_observation"] == 1  # emigr
    assert c["events_outside_residence"] == 1     # ingap
    assert c["censored"] == {"move": 1, "gap": 1, "residence_ends": 3, "end:slutdato": 1,
                             "follow_up": 1, "end:udvandret": 1}
    assert c["residence_rows_of_other_persons"] == 1 and c["residence_rows_merged"] == 1
    assert c["periods_clipped_at_arrival"] == 2   # movday, before
    assert c["person_time"] == pytest.approx(EXPECTED.eval("udgang - indgang").sum())


@pytest.mark.parametrize(("unit", "days"), [("weeks", 365.25 / 52), ("months", DAYS_PER_MONTH)])
def test_time_units_follow_munirank_conversion(unit, days):
    in_days = _build().episodes
    ep = _build(data={"time_unit": unit}).episodes
    np.testing.assert_allclose(ep["udgang"] * days, in_days["udgang"], rtol=1e-12)
    np.testing.assert_allclose(ep["indgang"] * days, in_days["indgang"], rtol=1e-12)


def test_no_follow_up_limit_and_a_common_end_of_data():
    persons = PERSONS.assign(slutdato=None)
    r = _build(persons, follow_up_months=None, end_dates=["udvandret"],
               end_of_data="2001-12-01")
    row = r.episodes.set_index("pnr").loc["limit"]
    assert (row["udgang"], row["haendelse"], row["exit_reason"]) == (334.0, 0, "end:end_of_data")
    assert r.counts["censored"]["end:end_of_data"] == 2  # "before" and "limit"


def test_to_inclusive_closes_one_day_gaps():
    res = RESIDENCE.iloc[:2].assign(til=["2001-04-10", None])
    ep = _build(PERSONS.iloc[:1], res.assign(fra=["2001-01-01", "2001-04-11"]),
                to_inclusive=True).episodes
    assert ep[["indgang", "udgang", "exit_reason"]].astype(str).values.tolist() == [
        ["0.0", "100.0", "move"], ["100.0", "200.0", "event"]]
    ep = _build(PERSONS.iloc[:1], res.assign(fra=["2001-01-01", "2001-04-11"])).episodes
    assert ep["exit_reason"].astype(str).tolist() == ["gap", "event"]


def test_carried_covariates_can_be_chosen_and_must_hold_the_model_covariates():
    persons = PERSONS.assign(alder=30.0, ukendt="x")
    ep = _build(persons, covariates=["alder", "mand"]).episodes
    assert list(ep.columns) == [*EPISODE, "alder", "mand"]
    wanted = spec(model={"individual": ["alder"]}, covariates=["mand"])
    with pytest.raises(InputError, match="not carried") as info:
        register_episodes(persons, RESIDENCE, wanted)
    assert info.value.column == "alder"


def test_integer_and_text_ids_are_matched():
    persons = PERSONS.assign(pnr=np.arange(11) + 1)
    ids = dict(zip(PERSONS["pnr"], map(str, persons["pnr"]), strict=True)) | {"nobody": "99"}
    ep = _build(persons, RESIDENCE.assign(pnr=RESIDENCE["pnr"].map(ids))).episodes
    assert len(ep) == len(EXPECTED) and ep["pnr"].tolist()[:3] == [1, 1, 2]


def test_another_arrival_column_and_dates_as_date_objects():
    persons = PERSONS[PERSONS["pnr"] != "arrday"].copy()
    start = pd.to_datetime(persons["indrejsedato"]) + pd.to_timedelta(10, unit="D")
    persons["programstart"] = start.dt.date
    assert persons["programstart"].dtype == object  # as pyreadstat gives Stata/SAS dates
    r = _build(persons, arrival="programstart", follow_up_months=None)
    mover = r.episodes[r.episodes["pnr"] == "mover"]
    assert mover[["indgang", "udgang"]].values.tolist() == [[0, 90], [90, 190]]
    assert "programstart" not in r.episodes and "indrejsedato" in r.episodes  # a covariate now
    assert r.counts["persons_dropped"]["no_time_at_risk"] == 0


def test_datetime_columns_with_a_time_zone_are_read_as_written():
    persons = PERSONS.assign(indrejsedato=pd.to_datetime(PERSONS["indrejsedato"]).dt
                             .tz_localize("Europe/Copenhagen"))
    pd.testing.assert_frame_equal(_build(persons).episodes, _build().episodes)


# ---------------------------------------------------------------- bad input (in-process)

def _error(persons=PERSONS, residence=RESIDENCE, **kw) -> InputError:
    with pytest.raises(InputError) as info:
        _build(persons, residence, **kw)
    assert "\n" not in str(info.value)
    return info.value


def test_overlapping_periods_name_both_rows():
    res = pd.concat([RESIDENCE, RESIDENCE.iloc[[0]].assign(kommune="C", fra="2001-02-01",
                                                           til="2001-03-01")],
                    ignore_index=True)
    err = _error(residence=res)
    assert (err.file, err.column, err.rows) == ("r.csv", "fra", [1, 17])
    assert "overlapping" in str(err) and "'mover'" in str(err)


def test_an_open_period_followed_by_another_overlaps():
    res = pd.concat([RESIDENCE, RESIDENCE.iloc[[7]].assign(kommune="B", fra="2001-06-01")],
                    ignore_index=True)
    assert _error(residence=res).rows == [8, 17]


def test_to_before_from():
    res = RESIDENCE.copy()
    res.loc[4, "til"] = "2000-12-31"
    err = _error(residence=res)
    assert (err.file, err.column, err.rows) == ("r.csv", "til", [5])


def test_event_and_end_before_arrival():
    persons = PERSONS.copy()
    persons.loc[3, "selvforsoerget"] = "2001-02-01"
    err = _error(persons)
    assert (err.file, err.column, err.rows) == ("p.csv", "selvforsoerget", [4])
    persons = PERSONS.copy()
    persons.loc[3, "udvandret"] = "2000-02-01"
    assert (_error(persons).column, _error(persons).rows) == ("udvandret", [4])


def test_unknown_municipality_codes():
    err = _error(known=["A", "B"])
    assert (err.file, err.column, err.rows) == ("r.csv", "kommune", [7, 11, 12])
    assert "'C'" in str(err)


@pytest.mark.parametrize(("table", "column", "value"), [
    ("residence", "fra", "31/12/2001"), ("residence", "til", "2001-13-01"),
    ("persons", "indrejsedato", "yesterday"), ("persons", "selvforsoerget", "2001-02-30"),
])
def test_dates_that_do_not_parse(table, column, value):
    persons, residence = PERSONS.copy(), RESIDENCE.copy()
    (persons if table == "persons" else residence).loc[2, column] = value
    err = _error(persons, residence)
    assert err.column == column and err.rows == [3]
    assert "does not parse" in str(err) and repr(value) in str(err)


def test_numbers_are_not_dates_and_required_dates_are_not_blank():
    assert "not numbers" in str(_error(PERSONS.assign(indrejsedato=20010101)))
    persons = PERSONS.copy()
    persons.loc[[1, 4], "indrejsedato"] = None
    err = _error(persons)
    assert (err.column, err.rows) == ("indrejsedato", [2, 5]) and "missing" in str(err)
    residence = RESIDENCE.copy()
    residence.loc[5, "fra"] = "  "
    assert (_error(residence=residence).column, _error(residence=residence).rows) == ("fra", [6])


def test_every_end_date_blank_needs_an_end_of_data():
    persons = PERSONS.assign(slutdato=None)
    err = _error(persons)
    assert err.column == "udvandret" and err.rows[:2] == [1, 2] and "end_of_data" in str(err)
    assert "end-of-observation" in str(_error(end_dates=[]))


def test_duplicated_person_missing_column_and_ids_that_match_nobody():
    persons = pd.concat([PERSONS, PERSONS.iloc[[2]]], ignore_index=True)
    assert (_error(persons).column, _error(persons).rows) == ("pnr", [3, 12])
    err = _error(residence=RESIDENCE.drop(columns="til"))
    assert (err.file, err.column) == ("r.csv", "til")
    assert "no residence row matches" in str(_error(residence=RESIDENCE.assign(
        pnr="zz" + RESIDENCE["pnr"])))


def test_a_covariate_named_like_an_episode_column_is_refused():
    err = _error(PERSONS.rename(columns={"mand": "udgang"}))
    assert err.column == "udgang" and "episode column" in str(err)
