"""The register form of a simulated register: persons and a residence history with dates.

What researchers receive on the secure server, made from the simulated episodes so that
``munirank episodes`` on it must give those episodes back (the inverse of
:func:`munirank.input.registers.register_episodes`). Episode times become instants:
date = arrival + t * L, L the unit's length (:mod:`munirank.input.dates`), rounded to the
nanosecond. Simulated times are not on a day grid (months to 0.001, i.e. 43.83 minutes;
weeks of 365.25 / 52 days), so the dates carry a time of day, and building episodes from
them gives the simulated times back to about 1e-15 of the unit. Arrival dates are whole
days: within the permit week (``dk``) or the start year (``no``) when the preset has them.

To exercise the rules, the register form adds what ``episodes`` must undo: residence starting
before arrival, last periods running on past the exit (or open), periods split in two within
one municipality (merged back), end dates in two columns with the later one ignored, an event
and the end of data on the same day (the event wins), rows of persons not in the person table,
rows in random order, and a simulated municipal reform (:func:`simulated_crosswalk`) that the
residence history ignores, as registers that keep the old codes do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from munirank.errors import InputError
from munirank.input.dates import NAT, NS_PER_DAY, OPEN, unit_ns

REGISTERS = {"id": "person_id", "arrival": "arrival", "event_date": "event_date",
             "end_dates": ["emigration", "end_of_follow_up"], "municipality": "municipality",
             "from_date": "from", "to_date": "to"}
"""The ``[registers]`` section of a simulated register's spec: its column names."""
EPISODE_COLUMNS = ("person_id", "municipality", "start", "stop", "event", "outcome", "arrival")


def _days(n: np.ndarray | int) -> np.ndarray:
    return np.asarray(n, np.int64) * NS_PER_DAY


def _jan1(year: np.ndarray) -> np.ndarray:
    return (np.asarray(year, np.int64) - 1970).astype("datetime64[Y]").astype(
        "datetime64[ns]").view(np.int64)


def _arrivals(first: pd.DataFrame, rng: np.random.Generator) -> np.ndarray:
    """Arrival midnights (int64 ns): within the permit week or start year when known."""
    n = len(first)
    if "arrival" in first:  # simulated in calendar time (simulation.panel): the dates as drawn
        return first["arrival"].to_numpy(np.int64)
    if "permit_year" in first:
        year = first["permit_year"].to_numpy(np.int64)
        offset = (_days((first["permit_week"].to_numpy(np.int64) - 1) * 7
                        + rng.integers(0, 7, n)) if "permit_week" in first
                  else _days(rng.integers(0, 365, n)))
    elif "start_year" in first:
        year = first["start_year"].to_numpy(np.int64)
        offset = _days(rng.integers(0, 365, n))
    else:
        year = rng.integers(2000, 2010, n)
        offset = _days(rng.integers(0, 365, n))
    return _jan1(year) + offset


def _dates(ns: np.ndarray) -> pd.Series:
    return pd.Series(np.asarray(ns, np.int64).view("datetime64[ns]"))


def simulate_register_form(spells: pd.DataFrame, rng: np.random.Generator, *,
                           time_unit: str = "months", strangers: int = 5,
                           ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Persons and residence history (columns as :data:`REGISTERS`) of an episode table.

    Parameters
    ----------
    spells : pandas.DataFrame
        Episodes as ``simulate`` writes them (:data:`EPISODE_COLUMNS` and covariates);
        episodes of one person do not overlap, only the last may have an event, and adjacent
        ones are in different municipalities.
    rng : numpy.random.Generator
        Source of the arrival dates and of the additions listed in the module docstring.
    time_unit : str
        Unit of ``start`` and ``stop``.
    strangers : int
        Residence rows of persons not in the person table.

    Returns
    -------
    persons, residence : pandas.DataFrame
        Dates as datetime columns.

    Raises
    ------
    InputError
        If adjacent episodes of one person are in the same municipality (they would be one).
    """
    unit = unit_ns(time_unit)
    sp = spells.sort_values(["person_id", "start"], kind="stable").reset_index(drop=True)
    pid, code = sp["person_id"].to_numpy(), sp["municipality"].to_numpy()
    same = np.append(False, pid[1:] == pid[:-1])
    touching = same & np.append(False, sp["stop"].to_numpy()[:-1] == sp["start"].to_numpy()[1:])
    if (touching & np.append(False, code[1:] == code[:-1])).any():
        raise InputError("adjacent episodes of one person in one municipality would be merged",
                         column="municipality")
    first = np.flatnonzero(~same)
    last = np.append(first[1:] - 1, len(sp) - 1)
    arrival = _arrivals(sp.iloc[first], rng)
    a = arrival[np.repeat(np.arange(len(first)), np.diff(np.append(first, len(sp))))]
    fra = a + np.round(sp["start"].to_numpy() * unit).astype(np.int64)
    til = a + np.round(sp["stop"].to_numpy() * unit).astype(np.int64)
    event = sp["event"].to_numpy()[last] == 1
    persons = _person_table(sp, first, arrival, til[last], event, rng)
    residence = _residence(code, pid, fra, til, first, last, rng)
    if strangers:
        ids = np.arange(strangers) + int(np.max(pid)) + 1
        start = _days(rng.integers(10_000, 15_000, strangers))
        residence = pd.concat([residence, pd.DataFrame({
            "person_id": ids, "municipality": code[:strangers], "from": _dates(start),
            "to": _dates(start + _days(30))})], ignore_index=True)
    return persons, residence.iloc[rng.permutation(len(residence))].reset_index(drop=True)


def _person_table(sp: pd.DataFrame, first: np.ndarray, arrival: np.ndarray,
                  exit_ns: np.ndarray, event: np.ndarray,
                  rng: np.random.Generator) -> pd.DataFrame:
    n = len(first)
    emigrated = ~event & (rng.random(n) < 0.25)
    later = exit_ns + _days(rng.integers(0, 1000, n))  # 0: the event and end of data coincide
    emigration = np.where(emigrated, exit_ns, np.where(event & (rng.random(n) < 0.1),
                                                       later + _days(1), NAT))
    end = np.where(emigrated, later + _days(1), np.where(event, later, exit_ns))
    covariates = [c for c in sp.columns if c not in EPISODE_COLUMNS]
    out = pd.DataFrame({"person_id": sp["person_id"].to_numpy()[first],
                        "arrival": _dates(arrival),
                        "event_date": _dates(np.where(event, exit_ns, NAT)),
                        "emigration": _dates(emigration), "end_of_follow_up": _dates(end)})
    return pd.concat([out, sp[covariates].iloc[first].reset_index(drop=True)], axis=1)


def _residence(code: np.ndarray, pid: np.ndarray, fra: np.ndarray, til: np.ndarray,
               first: np.ndarray, last: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    fra, til = fra.copy(), til.copy()
    before = first[rng.random(len(first)) < 0.3]
    fra[before] -= _days(rng.integers(1, 730, len(before)))
    u = rng.random(len(last))
    til[last[u < 0.3]] = OPEN  # still living there
    on = last[(u >= 0.3) & (u < 0.6)]
    til[on] += _days(rng.integers(1, 1000, len(on)))
    open_ = til == OPEN
    span = (np.where(open_, fra, til) - fra) // NS_PER_DAY
    split = np.flatnonzero((rng.random(len(fra)) < 0.1) & (span >= 2))
    cut = fra[split] + _days(rng.integers(1, span[split]))
    code = np.concatenate([code, code[split]])
    pid = np.concatenate([pid, pid[split]])
    fra = np.concatenate([fra, cut])
    til = np.concatenate([til, til[split]])
    til[split] = cut
    til = np.where(til == OPEN, NAT, til)  # NaT: a blank to date
    return pd.DataFrame({"person_id": pid, "municipality": code, "from": _dates(fra),
                         "to": _dates(til)})


def simulated_crosswalk(names: list[str], residence: pd.DataFrame,
                        rng: np.random.Generator) -> pd.DataFrame:
    """A made-up municipal reform of the simulated municipalities (not a real one).

    On 1 January of the year after the median from date, the municipalities, in random
    order, merge in groups of one to four into new ones named ``R01``, ``R02``, ...
    (a group of one is renamed). Columns ``old``, ``new``, ``date``.
    """
    order = np.asarray(names, dtype=object)[rng.permutation(len(names))]
    sizes = rng.integers(1, 5, len(names))
    group = np.repeat(np.arange(len(names)), sizes)[:len(names)]
    median = np.median(residence["from"].to_numpy("datetime64[ns]").view(np.int64))
    year = int(pd.Timestamp(int(median)).year) + 1
    width = max(2, len(str(group.max() + 1)))
    return pd.DataFrame({"old": order, "new": [f"R{g + 1:0{width}d}" for g in group],
                         "date": f"{year}-01-01"})


def write_register_form(spells: pd.DataFrame, names: list[str], *, time_unit: str, seed: int,
                        out: Path) -> dict[str, Any]:
    """Write persons.csv, residence.csv and crosswalk.csv; the spec's additions.

    The generator is seeded apart from the register's (``[seed, 24]``), so spells.csv is the
    same with or without the register form. Returns the ``[registers]`` section and the
    ``[data]`` crosswalk keys: episodes are reported on the old (simulated) municipalities,
    the new one of each beside it.
    """
    rng = np.random.default_rng([seed, 24])
    persons, residence = simulate_register_form(spells, rng, time_unit=time_unit)
    persons.to_csv(out / "persons.csv", index=False, lineterminator="\n")
    residence.to_csv(out / "residence.csv", index=False, lineterminator="\n")
    simulated_crosswalk(names, residence, rng).to_csv(out / "crosswalk.csv", index=False,
                                                      lineterminator="\n")
    return {"registers": dict(REGISTERS),
            "data": {"crosswalk": "crosswalk.csv", "crosswalk_level": "old"}}
