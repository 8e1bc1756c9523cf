r"""Dates and codes as register extracts give them, and time in the spec's unit.

Dates are datetime columns (Parquet; Stata and SAS date formats, which arrive as dates) or
ISO 8601 text (``YYYY-MM-DD``, optionally with a time of day, as a CSV holds them). Numbers
are refused (a Stata or SAS date without a date format arrives as a number of days since
1960), and so is any other text. Inside, a date is an instant, int64 nanoseconds since
1970-01-01 (midnight unless a time of day is given), so that differences are exact.

Time. A date D is t(D) = (D - A) / L in the spec's unit, with A the person's arrival date
(time zero) and L the length of the unit in days, from munirank's own conversion
(:data:`munirank.input.spec.TIME_UNITS_PER_MONTH`, a month being 365.25 / 12 days)::

    L_days = 1,   L_weeks = 365.25 / 52 = 7.0240,   L_months = 365.25 / 12 = 30.4375

munirank's week is 1/52 of a year, not 7 days, so that ``fit``'s conversion to months gives
(D - A) / 30.4375 days whatever the unit.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from munirank.errors import InputError
from munirank.input.spec import TIME_UNITS_PER_MONTH
from munirank.input.validate import as_codes

DAYS_PER_MONTH = 365.25 / 12.0
NS_PER_DAY = 86_400 * 10**9
OPEN = np.iinfo(np.int64).max
"""An open end (a blank to date or end date): later than every date."""
NAT = np.iinfo(np.int64).min
"""numpy's NaT as int64: a blank date."""
MAX_ROWS = 5


def unit_ns(time_unit: str) -> float:
    """Nanoseconds in one ``time_unit``: (365.25 / 12 days) / TIME_UNITS_PER_MONTH[unit]."""
    return DAYS_PER_MONTH / TIME_UNITS_PER_MONTH[time_unit] * NS_PER_DAY


def file_rows(mask: np.ndarray, positions: np.ndarray | None = None) -> list[int]:
    """Data rows (1 = first) where ``mask`` holds; ``positions``: file row of each element."""
    idx = np.flatnonzero(mask)
    if positions is not None:
        idx = np.sort(positions[idx])
    return [int(i) + 1 for i in idx[:MAX_ROWS + 1]]


def require_columns(df: pd.DataFrame, names: list[str], file: str, where: str) -> None:
    """Raise for an empty table or the first column of ``names`` it lacks."""
    if len(df) == 0:
        raise InputError("file has no data rows", file=file)
    for c in names:
        if c not in df.columns:
            have = [str(x) for x in df.columns][:8]
            raise InputError(f"required column is missing; the file has {have} (column names "
                             f"are set in the spec's {where})", file=file, column=c)


def parse_dates(values: pd.Series, *, file: str, column: str, required: bool) -> np.ndarray:
    """Dates as int64 nanoseconds since 1970 (:data:`NAT` where blank).

    Text is parsed once per distinct value (a register has a few thousand distinct days
    among millions of rows).

    Parameters
    ----------
    values : pandas.Series
        A column as read: datetimes, dates, or ISO 8601 text.
    file, column : str
        Where the column is, for messages.
    required : bool
        Whether a blank is an error.

    Returns
    -------
    numpy.ndarray
        int64 nanoseconds since 1970-01-01.

    Raises
    ------
    InputError
        For numbers, text that is not an ISO 8601 date, and blanks in a required column,
        naming the first rows.
    """
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_localize(None)  # the wall-clock date, as written
    if pd.api.types.is_datetime64_dtype(values.dtype):
        ns = values.to_numpy("datetime64[ns]").view(np.int64).copy()
        blank = ns == NAT
    else:
        ns, blank = _parse_text(values, file, column)
    if required and blank.any():
        raise InputError("missing values", file=file, column=column, rows=file_rows(blank))
    return ns


def _parse_text(values: pd.Series, file: str, column: str) -> tuple[np.ndarray, np.ndarray]:
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    if pd.api.types.is_numeric_dtype(uniques.dtype) and len(uniques):
        raise InputError(
            f"dates must be dates (YYYY-MM-DD), not numbers (e.g. {uniques[0]!r}; a Stata or "
            "SAS date needs a date format)", file=file, column=column, rows=file_rows(codes >= 0))
    text = pd.Series(uniques, dtype=object)
    is_text = text.map(type).eq(str).to_numpy()
    text[is_text] = text[is_text].str.strip()
    blank_unique = (text == "").to_numpy()
    parsed = pd.to_datetime(text.where(~blank_unique), format="ISO8601", errors="coerce")
    unique_ns = parsed.to_numpy("datetime64[ns]").view(np.int64)
    bad_unique = np.flatnonzero((unique_ns == NAT) & ~blank_unique)
    if len(bad_unique):
        raise InputError(f"date does not parse (e.g. {uniques[bad_unique[0]]!r}): write dates "
                         "as YYYY-MM-DD", file=file, column=column,
                         rows=file_rows(np.isin(codes, bad_unique)))
    ns = np.append(unique_ns, NAT)[codes]  # code -1 (a blank) reads the last: NaT
    return ns, ns == NAT


def as_text_codes(values: pd.Series, *, file: str, column: str) -> np.ndarray:
    """Municipality codes as text, as ``fit`` reads them (``validate.as_codes``).

    Cleaned once per distinct value; blanks are an error.
    """
    ints, uniques = pd.factorize(values, use_na_sentinel=True)
    text = as_codes(pd.Series(uniques)).to_numpy(object)
    blank = (ints < 0) | (text[np.maximum(ints, 0)] == "") if len(text) else ints < 0
    if blank.any():
        raise InputError("missing values", file=file, column=column, rows=file_rows(blank))
    return text[ints]


def person_keys(persons: pd.Series, residence: pd.Series, *, files: tuple[str, str],
                column: str) -> tuple[np.ndarray, np.ndarray]:
    """Person ids of both tables in one comparable form (integers, or text as codes)."""
    if (pd.api.types.is_integer_dtype(persons.dtype)
            and pd.api.types.is_integer_dtype(residence.dtype)):
        return persons.to_numpy(np.int64), residence.to_numpy(np.int64)
    return (as_text_codes(persons, file=files[0], column=column),
            as_text_codes(residence, file=files[1], column=column))
