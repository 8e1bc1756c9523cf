r"""Episodes split at calendar years, and municipal values by municipality and year.

Splitting (what R's ``survival::survSplit`` / ``tmerge`` and Stata's ``stsplit`` do). Times
are in the spec's unit since arrival A; the boundary of year y is b_y = t(1 January y) =
(1 January y - A) / L. An episode (s, t] that crosses the boundaries b_{y+1} < ... < b_{y+k}
becomes

    (s, b_{y+1}], (b_{y+1}, b_{y+2}], ..., (b_{y+k}, t]

with ``year`` y, y + 1, ..., y + k (the calendar year of the piece's days): the event stays
on the last piece, the other pieces end with ``year_end`` and every later piece has delayed
entry. Each boundary is computed once and used as the stop of one piece and the start of the
next, so the pieces' lengths add up to the episode's. For any hazard h the log-likelihood of
an episode, d log h(t) - (H(t) - H(s)), is the sum of its pieces' (the cumulative hazard's
increments add up over adjacent intervals and only the last piece has d), so splitting
changes nothing but which covariate values each stretch of time can have.

The municipal table keyed by municipality and year (``[data] municipal_year`` names its year
column): one row per municipality and calendar year, a value for every municipal covariate;
each split episode reads the row of its municipality and year (:func:`municipal_by_year`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from munirank.errors import InputError
from munirank.input import dates as dt
from munirank.input.spec import Spec

YEAR_END = "year_end"


def _boundary(year: np.ndarray, arrival: np.ndarray, unit: float) -> np.ndarray:
    """t(1 January ``year``) in the unit since ``arrival`` (int64 ns)."""
    jan1 = (year - 1970).astype("datetime64[Y]").astype("datetime64[ns]").view(np.int64)
    return (jan1 - arrival) / unit


def _year_of(time: np.ndarray, arrival: np.ndarray, unit: float) -> np.ndarray:
    d = (arrival + np.round(time * unit).astype(np.int64)).view("datetime64[ns]")
    return d.astype("datetime64[Y]").astype(np.int64) + 1970


def year_pieces(start: np.ndarray, stop: np.ndarray, arrival: np.ndarray, unit: float,
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Cut episodes (start, stop] at 1 January of each year (module docstring).

    Returns
    -------
    row : numpy.ndarray
        The episode each piece comes from.
    last : numpy.ndarray
        Whether the piece is its episode's last.
    piece_start, piece_stop : numpy.ndarray
        In the unit since arrival.
    year : numpy.ndarray
        The calendar year of each piece.
    """
    y0 = _year_of(start, arrival, unit)  # the year of (s, s + eps): b(y0) <= s < b(y0 + 1)
    y0 = y0 - (_boundary(y0, arrival, unit) > start) + (_boundary(y0 + 1, arrival, unit)
                                                        <= start)
    y1 = _year_of(stop, arrival, unit)  # the year of (t - eps, t]: b(y1) < t <= b(y1 + 1)
    y1 = y1 - (_boundary(y1, arrival, unit) >= stop) + (_boundary(y1 + 1, arrival, unit)
                                                        < stop)
    pieces = y1 - y0 + 1
    row = np.repeat(np.arange(len(start)), pieces)
    k = np.arange(len(row)) - np.repeat(np.cumsum(pieces) - pieces, pieces)
    last = k == pieces[row] - 1
    year = y0[row] + k
    a = arrival[row]
    piece_start = np.where(k == 0, start[row], _boundary(year, a, unit))
    piece_stop = np.where(last, stop[row], _boundary(year + 1, a, unit))
    return row, last, piece_start, piece_stop, year


def split_years(episodes: pd.DataFrame, arrival: np.ndarray, spec: Spec, *,
                columns: dict[str, str]) -> tuple[pd.DataFrame, np.ndarray]:
    """Split the episodes ``munirank episodes`` builds (columns by role, as output_columns).

    Returns the split table and, for each piece, the row of ``episodes`` it comes from.
    """
    unit = dt.unit_ns(spec.data.time_unit)
    start, stop = columns["entry"], columns["time"]
    row, last, s, t, year = year_pieces(episodes[start].to_numpy(float),
                                        episodes[stop].to_numpy(float), arrival, unit)
    out = episodes.iloc[row].reset_index(drop=True)
    out[start], out[stop] = s, t
    out[columns["event"]] = np.where(last, out[columns["event"]].to_numpy(), 0).astype(np.int8)
    reason = out["exit_reason"].cat.add_categories([YEAR_END])
    out["exit_reason"] = reason.where(last, YEAR_END)
    where = out.columns.get_loc(columns["exit_reason"]) + 1
    out.insert(where, columns["year"], year)
    out.insert(where, columns["episode"], row + 1)
    return out, row


def split_at_years(episodes: pd.DataFrame, arrival: pd.Series, *, time_unit: str = "months",
                   id: str = "person_id", start: str = "start", stop: str = "stop",
                   event: str = "event", year: str = "year") -> pd.DataFrame:
    """Split any episode table at 1 January of each calendar year (survSplit, stsplit).

    Parameters
    ----------
    episodes : pandas.DataFrame
        Episodes (start, stop] in ``time_unit`` since each person's arrival.
    arrival : pandas.Series
        Arrival dates (time zero), indexed by person id.
    time_unit : {"months", "weeks", "days"}
        The unit of ``start`` and ``stop`` (lengths in :mod:`munirank.input.dates`).
    id, start, stop, event, year : str
        Column names; ``year`` is added.

    Returns
    -------
    pandas.DataFrame
        One row per episode and calendar year; pieces are adjacent, the event is on the last
        piece, other columns are copied. Exposure and the likelihood of any hazard model
        are unchanged (module docstring).

    Examples
    --------
    >>> ep = pd.DataFrame({"pnr": [1], "start": [0.0], "stop": [400.0], "event": [1]})
    >>> arrival = pd.Series(pd.to_datetime(["2001-07-01"]), index=[1])
    >>> print(split_at_years(ep, arrival, time_unit="days", id="pnr").to_string(index=False))
     pnr  start  stop  event  year
       1    0.0 184.0      0  2001
       1  184.0 400.0      1  2002
    """
    unit = dt.unit_ns(time_unit)
    ns = dt.parse_dates(arrival.reset_index(drop=True), file="arrival", column="arrival",
                        required=True)
    a = ns[pd.Index(arrival.index).get_indexer(episodes[id])]
    row, last, s, t, y = year_pieces(episodes[start].to_numpy(float),
                                     episodes[stop].to_numpy(float), a, unit)
    out = episodes.iloc[row].reset_index(drop=True)
    out[start], out[stop] = s, t
    out[event] = np.where(last, out[event].to_numpy(), 0)
    out[year] = y
    return out


def municipal_by_year(episodes: pd.DataFrame, table: pd.DataFrame, *,
                      group: str = "municipality", year: str = "year",
                      table_year: str | None = None,
                      file: str = "municipal table") -> pd.DataFrame:
    """Attach a municipality x calendar-year table to year-split episodes.

    Parameters
    ----------
    episodes : pandas.DataFrame
        Split episodes with columns ``group`` and ``year``.
    table : pandas.DataFrame
        One row per municipality and year (checked, e.g. by
        :func:`munirank.input.validate.validate_municipal_years`).
    group, year : str
        The key columns of the episodes; ``table_year``: the table's year column (default
        ``year``).
    file : str
        The table's name, for messages.

    Returns
    -------
    pandas.DataFrame
        ``episodes`` with the table's other columns, row for row.

    Raises
    ------
    InputError
        If a municipality and year is listed twice or an episode's is missing.
    """
    table_year = table_year or year
    key = pd.DataFrame({group: table[group].astype(str),
                        year: table[table_year].astype(np.int64)})
    dup = key.duplicated(keep=False).to_numpy()
    if dup.any():
        raise InputError("municipality and year listed more than once", file=file,
                         column=table_year, rows=dt.file_rows(dup))
    values = table.drop(columns=[group, table_year]).assign(**key)
    out = episodes.merge(values, on=[group, year], how="left", validate="many_to_one",
                         indicator=True)
    missing = (out.pop("_merge") == "left_only").to_numpy()
    if missing.any():
        first = out[missing].iloc[0]
        raise InputError(f"no row for municipality {first[group]!r} in {first[year]}: add one",
                         file=file, column=table_year)
    return out
