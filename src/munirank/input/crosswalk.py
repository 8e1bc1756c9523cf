"""Crosswalks of municipal reforms: records on the old or on the new municipalities.

Format. A CSV (or any format :func:`~munirank.input.read.read_table` reads) with three
columns, named by ``[data] crosswalk_columns`` (default ``old``, ``new``, ``date``): on
``date`` (the reform day, YYYY-MM-DD) the municipality ``old`` became part of ``new``.
Municipalities a reform left unchanged may be listed (old = new) or left out. One reform
is all the rows of one date; several reforms chain in date order. Each old code maps to one
new municipality on each date: a code listed with two new codes on one date is refused
(the Danish 2007 reform split a few municipalities by parish: map each such code to one
municipality, e.g. the one that received most of its inhabitants).

Reading a record. A residence period is coded in the coding in force on its from date:
before a reform in the old codes, from the reform day on in the new ones. A code that a
reform merged away (an old code mapped elsewhere, and no new code of that reform or a later
one) no longer exists after the reform, so a record dated later in it is read as its
successor: registers that kept the old codes after a reform are read right.

Levels (``[data] crosswalk_level``):

- ``new``: every record is mapped forward through the reforms after its date (chains
  followed), and reported on the municipalities after the last reform.
- ``old``: records keep the municipality the registers recorded; a record dated on or after
  a reform in a new municipality formed from several old ones is refused (which old one is
  unknown); one in a renamed municipality (a single predecessor) gets the old code. The new
  municipality of each record is returned beside it (old ones nest in new ones).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from munirank.errors import InputError
from munirank.input.dates import as_text_codes, file_rows, parse_dates, require_columns
from munirank.input.read import read_table
from munirank.input.spec import CROSSWALK_LEVELS, Spec


@dataclass(frozen=True)
class Crosswalk:
    """A checked crosswalk: one row per old code and reform date (dates int64 ns)."""

    old: np.ndarray
    new: np.ndarray
    date: np.ndarray
    file: str = "crosswalk"


def check_crosswalk(table: pd.DataFrame, *, file: str = "crosswalk",
                    columns: tuple[str, ...] = ("old", "new", "date")) -> Crosswalk:
    """Validate a crosswalk (format in the module docstring).

    Parameters
    ----------
    table : pandas.DataFrame
        As read.
    file : str
        Its name, for messages.
    columns : tuple of str
        The names of the old-code, new-code and date columns.

    Returns
    -------
    Crosswalk
        Codes as text; a row repeated exactly is kept once.

    Raises
    ------
    InputError
        Missing columns or values, dates that do not parse, or an old code mapped to two
        municipalities on one date (naming its rows).

    Examples
    --------
    >>> cw = check_crosswalk(pd.DataFrame({"old": ["A1", "A2"], "new": ["N", "N"],
    ...                                    "date": ["2007-01-01", "2007-01-01"]}))
    >>> cw.new.tolist()
    ['N', 'N']
    """
    o, n, d = columns
    require_columns(table, [o, n, d], file, "[data] crosswalk_columns")
    frame = pd.DataFrame({"old": as_text_codes(table[o], file=file, column=o),
                          "new": as_text_codes(table[n], file=file, column=n),
                          "date": parse_dates(table[d], file=file, column=d, required=True)})
    targets = frame.groupby(["old", "date"])["new"].transform("nunique").to_numpy()
    if (targets > 1).any():
        first = frame[targets > 1].iloc[0]
        rows = file_rows((targets > 1) & (frame["old"] == first["old"]).to_numpy()
                         & (frame["date"] == first["date"]).to_numpy())
        raise InputError(f"code {first['old']!r} maps to {targets.max()} municipalities on "
                         f"{pd.Timestamp(first['date']).date()}: keep one row per old code "
                         "and date (map a split municipality to one new one)", file=file,
                         column=o, rows=rows)
    frame = frame.drop_duplicates(["old", "date"])
    return Crosswalk(frame["old"].to_numpy(object), frame["new"].to_numpy(object),
                     frame["date"].to_numpy(np.int64), file)


def read_crosswalk(spec: Spec) -> Crosswalk | None:
    """The spec's ``[data] crosswalk``, read and checked (None if the spec names none)."""
    path = spec.resolve(spec.data.crosswalk)
    if path is None:
        return None
    table = read_table(path, encoding=spec.data.encoding,
                       str_columns=tuple(spec.data.crosswalk_columns[:2]))
    return check_crosswalk(table, file=str(path), columns=spec.data.crosswalk_columns)


@dataclass(frozen=True)
class _Reform:
    """One reform day on integer codes: forward and back maps (-1: several predecessors)."""

    day: int
    forward: np.ndarray
    back: np.ndarray
    merged_away: np.ndarray  # codes that no longer exist from ``day`` on
    sources: dict[int, np.ndarray]


def _reforms(cw: Crosswalk, names: pd.Index) -> list[_Reform]:
    n = len(names)
    steps = []
    for day in np.unique(cw.date):
        reused = np.zeros(n, bool)  # codes this reform or a later one (re)creates
        reused[names.get_indexer(cw.new[cw.date >= day])] = True
        sel = cw.date == day
        o, t = names.get_indexer(cw.old[sel]), names.get_indexer(cw.new[sel])
        forward = np.arange(n)
        forward[o] = t
        count = np.bincount(t, minlength=n)
        back = np.arange(n)
        lone = count[t] == 1
        back[t[lone]] = o[lone]
        back[count > 1] = -1
        gone = np.zeros(n, bool)
        gone[o[o != t]] = True
        steps.append(_Reform(int(day), forward, back, gone & ~reused,
                             {int(k): o[t == k] for k in np.flatnonzero(count > 1)}))
    return steps


def map_codes(codes: np.ndarray, dates: np.ndarray, cw: Crosswalk, *, level: str,
              file: str, column: str, positions: np.ndarray | None = None,
              ) -> tuple[np.ndarray, np.ndarray, int]:
    """Codes of records dated ``dates`` (int64 ns) on the ``level`` units.

    Parameters
    ----------
    codes : numpy.ndarray
        Municipality codes as text.
    dates : numpy.ndarray
        Each record's date (a residence period's from date).
    cw : Crosswalk
        From :func:`check_crosswalk`.
    level : {"new", "old"}
        See the module docstring.
    file, column : str
        Where the records are, for messages; ``positions``: their file rows.

    Returns
    -------
    codes : numpy.ndarray
        At ``level``.
    newest : numpy.ndarray
        The municipality after the last reform.
    read_as_successor : int
        Records dated after the reform that merged their code away.

    Raises
    ------
    InputError
        With ``level="old"``, for records in a merged municipality after its reform.
    """
    if level not in CROSSWALK_LEVELS:
        raise InputError(f"must be one of {CROSSWALK_LEVELS}", column="data.crosswalk_level")
    names = pd.Index(pd.unique(np.concatenate([cw.old, cw.new, pd.unique(codes)])))
    ints = names.get_indexer(codes)
    steps = _reforms(cw, names)
    newest = ints
    successor = np.zeros(len(ints), bool)
    for step in steps:
        late = (dates >= step.day) & step.merged_away[newest]
        successor |= late
        newest = np.where((dates < step.day) | late, step.forward[newest], newest)
    if level == "new":
        return names.to_numpy()[newest], names.to_numpy()[newest], int(successor.sum())
    for step in steps[::-1]:
        after = dates >= step.day
        bad = after & (step.back[ints] < 0)
        if bad.any():
            target = int(ints[bad][0])
            olds = sorted(names[step.sources[target]])
            raise InputError(
                f"municipality {names[target]!r} was formed on "
                f"{pd.Timestamp(step.day).date()} from {len(olds)} old ones "
                f"({', '.join(olds[:4])}{', ...' if len(olds) > 4 else ''}): periods from that "
                "date on cannot be reported on the old municipalities; use crosswalk_level = "
                "\"new\", or end follow-up before the reform", file=file, column=column,
                rows=file_rows(bad, positions))
        ints = np.where(after, step.back[ints], ints)
    return names.to_numpy()[ints], names.to_numpy()[newest], int(successor.sum())


def apply_crosswalk(table: pd.DataFrame, crosswalk: pd.DataFrame, *, level: str = "new",
                    code: str = "municipality", date: str = "from",
                    columns: tuple[str, ...] = ("old", "new", "date"), file: str = "table",
                    crosswalk_file: str = "crosswalk") -> pd.DataFrame:
    """Report a dated table (e.g. residence periods) on the old or the new municipalities.

    Parameters
    ----------
    table : pandas.DataFrame
        Has a code column and a date column (each record's date).
    crosswalk : pandas.DataFrame
        See :func:`check_crosswalk`.
    level : {"new", "old"}
        ``"old"`` also adds ``<code>_new``, the municipality after the last reform.
    code, date : str
        The columns of ``table``.
    columns : tuple of str
        The crosswalk's old-code, new-code and date columns.
    file, crosswalk_file : str
        Names for messages.

    Returns
    -------
    pandas.DataFrame
        A copy with ``code`` replaced (as text).

    Raises
    ------
    InputError
        As :func:`check_crosswalk` and :func:`map_codes`.

    Examples
    --------
    >>> cw = pd.DataFrame({"old": ["A1", "A2"], "new": ["N", "N"], "date": ["2007-01-01"] * 2})
    >>> periods = pd.DataFrame({"kommune": ["A1", "A2", "A1"],
    ...                         "fra": ["2003-05-01", "2006-02-01", "2008-01-01"]})
    >>> apply_crosswalk(periods, cw, code="kommune", date="fra")["kommune"].tolist()
    ['N', 'N', 'N']
    """
    cw = check_crosswalk(crosswalk, file=crosswalk_file, columns=columns)
    codes = as_text_codes(table[code], file=file, column=code)
    dates = parse_dates(table[date], file=file, column=date, required=True)
    mapped, newest, _ = map_codes(codes, dates, cw, level=level, file=file, column=code)
    out = table.copy()
    out[code] = mapped
    if level == "old":
        out[f"{code}_new"] = newest
    return out
