"""Episodes split at calendar years (exact), and the municipal table by year."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from histories import PERSONS, RESIDENCE, spec

from munirank.errors import InputError
from munirank.input import validate
from munirank.input.dates import unit_ns
from munirank.input.registers import register_episodes
from munirank.input.spec import spec_from_dict
from munirank.input.years import municipal_by_year, split_at_years
from munirank.simulation.register import simulate_register
from munirank.simulation.register_form import REGISTERS, simulate_register_form


def _loglik(df: pd.DataFrame, start: str, stop: str, event: str, alpha: float = 1.3,
            lam: float = 0.02) -> float:
    """Weibull log-likelihood with delayed entry."""
    t, s, d = df[stop].to_numpy(), df[start].to_numpy(), df[event].to_numpy()
    return float(np.sum(d * (np.log(alpha * lam) + (alpha - 1) * np.log(t)))
                 - lam * np.sum(t**alpha - s**alpha))


def test_split_at_years_by_hand():
    ep = pd.DataFrame({"pnr": [1, 1, 2], "start": [0.0, 184.0, 0.0],
                       "stop": [184.0, 400.0, 10.0], "event": [0, 1, 1]})
    arrival = pd.Series(pd.to_datetime(["2001-07-01", "2001-12-22"]), index=[1, 2])
    out = split_at_years(ep, arrival, time_unit="days", id="pnr")
    # 184 days after 2001-07-01 is 2002-01-01: the first episode ends on the boundary (no
    # empty piece), the second starts on it (year 2002); person 2 crosses into 2002 at day 10
    assert out[["pnr", "start", "stop", "event", "year"]].values.tolist() == [
        [1, 0, 184, 0, 2001], [1, 184, 400, 1, 2002], [2, 0, 10, 1, 2001]]
    ep.loc[2, "stop"] = 11.0
    out = split_at_years(ep, arrival, time_unit="days", id="pnr")
    assert out.iloc[2:][["start", "stop", "event", "year"]].values.tolist() == [
        [0, 10, 0, 2001], [10, 11, 1, 2002]]


def test_register_episodes_split_at_years_mark_the_pieces():
    whole = register_episodes(PERSONS, RESIDENCE, spec()).episodes
    r = register_episodes(PERSONS, RESIDENCE, spec(split_years=True))
    ep = r.episodes
    assert list(ep.columns)[:8] == ["pnr", "kommune", "indgang", "udgang", "haendelse",
                                    "exit_reason", "episode", "year"]
    assert ep["episode"].tolist() == list(range(1, len(whole) + 1))
    limit = ep[ep["pnr"] == "limit"]  # 2001-01-01 to day 365 = 2002-01-01: one piece
    assert limit[["udgang", "year", "exit_reason"]].values.tolist() == [[365, 2001, "follow_up"]]
    before = ep[ep["pnr"] == "before"]  # the arrival year only
    assert before["year"].tolist() == [2001]
    assert r.counts["episodes_out"] == len(ep) == len(whole)  # 2001 holds everything here
    assert (ep["mand"] == whole["mand"]).all()


@pytest.mark.parametrize(("preset", "unit"), [("tiny", "months"), ("no-2012-2018", "months"),
                                              ("dk-1999-2005", "weeks")])
def test_splitting_is_exact(preset, unit):
    spells = simulate_register(preset, seed=8)["spells"]
    if preset != "tiny":  # 4,000 persons are enough
        spells = spells[spells["person_id"] <= spells["person_id"].iloc[0] + 4000]
    persons, residence = simulate_register_form(spells, np.random.default_rng(8),
                                                time_unit=unit)
    s = spec_from_dict({"data": {"time_unit": unit, "entry": "start"}, "registers": REGISTERS})
    ep = register_episodes(persons, residence, s).episodes.assign(episode=lambda d: d.index)
    split = register_episodes(persons, residence, spec_from_dict(
        {"data": {"time_unit": unit, "entry": "start"},
         "registers": REGISTERS | {"split_years": True}})).episodes
    arrival = persons.set_index("person_id")["arrival"]
    again = split_at_years(ep, arrival, time_unit=unit)
    piece = again["episode"].to_numpy()
    assert len(again) > 1.5 * len(ep)
    np.testing.assert_array_equal(again["stop"], split["stop"])  # both ways agree exactly
    np.testing.assert_array_equal(again["year"], split["year"])
    np.testing.assert_array_equal(again["episode"] + 1, split["episode"])  # pieces -> episode
    exposure = (again["stop"] - again["start"]).groupby(piece).sum().to_numpy()
    np.testing.assert_allclose(exposure, ep["stop"] - ep["start"], rtol=1e-12)
    assert again["event"].sum() == ep["event"].sum() == split["event"].sum()
    assert _loglik(again, "start", "stop", "event") == pytest.approx(
        _loglik(ep, "start", "stop", "event"), rel=1e-12)
    same = np.append(piece[1:] == piece[:-1], False)
    assert (again["stop"].to_numpy()[same] == again["start"].to_numpy()[1:][same[:-1]]).all()
    assert (again["event"].to_numpy()[same] == 0).all()  # events only on last pieces
    assert (split["exit_reason"].to_numpy()[same] == "year_end").all()
    assert (again["stop"] > again["start"]).all()
    a = arrival.loc[again["person_id"]].to_numpy()  # each piece lies in its calendar year
    mid = a + pd.to_timedelta((again["start"] + again["stop"]) / 2 * unit_ns(unit),
                              unit="ns").to_numpy()
    assert (pd.DatetimeIndex(mid).year == again["year"]).all()


MUNICIPAL = pd.DataFrame({"kommune": ["A", "A", "B"], "aar": [2001, 2002, 2001],
                          "ledighed": [5.0, 6.0, 7.0]})


def test_municipal_table_by_year_is_joined_per_piece():
    ep = pd.DataFrame({"kommune": ["A", "A", "B"], "year": [2001, 2002, 2001],
                       "start": [0, 1, 0], "stop": [1, 2, 3]})
    joined = municipal_by_year(ep, MUNICIPAL, group="kommune", table_year="aar")
    assert joined["ledighed"].tolist() == [5.0, 6.0, 7.0]
    with pytest.raises(InputError, match="no row for municipality 'B' in 2001"):
        municipal_by_year(ep, MUNICIPAL.iloc[:2], group="kommune", table_year="aar",
                          file="m.csv")
    with pytest.raises(InputError) as info:
        municipal_by_year(ep, pd.concat([MUNICIPAL, MUNICIPAL.iloc[[1]]]), group="kommune",
                          table_year="aar", file="m.csv")
    assert info.value.rows == [2, 4]


def test_municipal_table_by_year_is_validated():
    s = spec({"municipal_year": "aar", "municipal_table": "m.csv"}, {"municipal": ["ledighed"]})
    out = validate.validate_municipal_years(MUNICIPAL, s, file="m.csv")
    assert out["aar"].dtype == np.int64 and out["kommune"].tolist() == ["A", "A", "B"]
    for bad, column, rows, words in [
        (MUNICIPAL.assign(aar=[2001, 2001.5, 2002]), "aar", [2], "calendar year"),
        (pd.concat([MUNICIPAL, MUNICIPAL.iloc[[0]]]), "aar", [1, 4], "more than once"),
        (MUNICIPAL.assign(ledighed=[1.0, None, 2.0]), "ledighed", [2], "missing"),
    ]:
        with pytest.raises(InputError, match=words) as info:
            validate.validate_municipal_years(bad.reset_index(drop=True), s, file="m.csv")
        assert (info.value.file, info.value.column, info.value.rows) == ("m.csv", column, rows)
    needed = pd.DataFrame({"kommune": ["A", "B"], "year": [2002, 2002]})
    with pytest.raises(InputError, match="B 2002") as info:
        validate.check_municipal_years(out, needed, s, file="m.csv")
    assert info.value.column == "aar"
