"""Input validation at the public boundary (pandera schemas), raising one-line InputErrors.

Every check names the file, the column and the first offending rows (numbered from 1 = the
first data row). Inner code trusts what passes here.
"""

from __future__ import annotations

import codecs
import difflib
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pandera.pandas as pa

from munirank.errors import InputError
from munirank.input.spec import Spec

_MAX_ROWS = 5
# Human wording of the pandera checks used below, keyed by the check's name.
_CHECK_MESSAGES = {
    "greater_than(0)": "must be greater than 0",
    "greater_than_or_equal_to(0)": "must not be negative",
    "isin([0, 1])": "must be 0 or 1 (1 = outcome reached, 0 = censored)",
    "finite": "must be a finite number",
    "whole years": "must be a calendar year (a whole number, e.g. 2003)",
}


def _rows(mask: np.ndarray | pd.Series) -> list[int]:
    """1-based data rows where ``mask`` holds (the first few and one more, for '+N more')."""
    return [int(i) + 1 for i in np.flatnonzero(np.asarray(mask))[:_MAX_ROWS + 1]]


def _first_failure(err: pa.errors.SchemaErrors, file: str) -> InputError:
    cases = err.failure_cases
    missing = cases[cases["check"] == "column_in_dataframe"]
    if len(missing):
        col = str(missing["failure_case"].iloc[0])
        return InputError("required column is missing", file=file, column=col)
    first = cases.iloc[0]
    column, check = first["column"], str(first["check"])
    sub = cases[(cases["column"] == column) & (cases["check"] == check)]
    rows = sorted({int(i) + 1 for i in sub["index"].dropna()})
    if check == "not_nullable":
        message = "missing values"
    else:
        message = _CHECK_MESSAGES.get(check, f"fails check {check}")
        message += f" (e.g. {_show(sub['failure_case'].iloc[0])})"
    return InputError(message, file=file, column=str(column), rows=rows)


def _show(value: object) -> str:
    """A failure case as the user wrote it: 2 not np.float64(2.0)."""
    if isinstance(value, float | np.floating) and np.isfinite(value) and float(value).is_integer():
        return str(int(value))
    return str(value.item()) if isinstance(value, np.generic) else repr(value)


def _run(schema: pa.DataFrameSchema, df: pd.DataFrame, file: str) -> pd.DataFrame:
    with warnings.catch_warnings():
        # pandera's failure-case formatter concatenates empty frames (a pandas FutureWarning)
        warnings.simplefilter("ignore", FutureWarning)
        try:
            return schema.validate(df, lazy=True)
        except pa.errors.SchemaErrors as err:
            raise _first_failure(err, file) from None


def _check_columns(df: pd.DataFrame, file: str) -> None:
    if df.shape[0] == 0:
        raise InputError("file has no data rows", file=file)
    dup = df.columns[df.columns.duplicated()]
    if len(dup):
        raise InputError("duplicated column name: keep one", file=file, column=str(dup[0]))


def _require(df: pd.DataFrame, columns: Sequence[str], file: str) -> None:
    """Raise for the first required column that the file lacks, listing what it has."""
    for c in columns:
        if c not in df.columns:
            have = [str(x) for x in df.columns]
            close = difflib.get_close_matches(c, have, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"the file has {have[:8]}"
            raise InputError(f"required column is missing; {hint} (column names are set in "
                             "the spec's [data] and [covariates])", file=file, column=c)


def _no_missing(df: pd.DataFrame, columns: Sequence[str], file: str) -> None:
    # Checked before any coercion: str coercion would turn NaN into the text "nan".
    for c in columns:
        missing = df[c].isna()
        if df[c].dtype == object:  # blank text is missing too
            missing |= df[c].astype(str).str.strip() == ""
        if missing.any():
            raise InputError("missing values", file=file, column=c, rows=_rows(missing))


def _numeric(df: pd.DataFrame, columns: Sequence[str], file: str) -> pd.DataFrame:
    """Coerce ``columns`` to float, naming the rows that are not numbers."""
    out = df.copy()
    for c in columns:
        values = pd.to_numeric(df[c], errors="coerce")
        bad = values.isna() & df[c].notna()
        if bad.any():
            example = df[c][bad].iloc[0]
            hint = " (use '.' as the decimal mark)" if "," in str(example) else ""
            raise InputError(f"values are not numeric (e.g. {example!r}){hint}", file=file,
                             column=c, rows=_rows(bad))
        out[c] = values.astype(float)
    return out


def as_codes(values: pd.Series) -> pd.Series:
    """Municipality codes as text: integer-valued numbers lose their '.0', spaces are cut.

    A Stata or SAS file stores codes such as 101 as numbers (read as 101.0) while a CSV
    municipal table holds the text '101'; both must name the same municipality.
    """
    if pd.api.types.is_numeric_dtype(values):
        numbers = values.astype(float)
        if np.all(np.mod(numbers, 1) == 0):
            return numbers.astype("int64").astype(str)
        return numbers.astype(str)
    return values.astype(str).str.strip()


def validate_spells(df: pd.DataFrame, spec: Spec, *, file: str) -> pd.DataFrame:
    """Check the spell (episode) table against the spec.

    Parameters
    ----------
    df : pandas.DataFrame
        Spells as read, one row per episode.
    spec : Spec
        Names of the columns to use.
    file : str
        The file the table came from, for messages.

    Returns
    -------
    pandas.DataFrame
        The columns the model needs, numeric columns as float, codes and levels as text.

    Raises
    ------
    InputError
        Naming the file, the column and the first offending rows.
    """
    _check_columns(df, file)
    d, cov = spec.data, spec.covariates
    numeric = [c for c in cov.individual if c not in cov.categorical]
    times = [d.time] + ([d.entry] if d.entry is not None else [])
    keys = [c for c in (d.episode, d.parent, d.period) if c is not None]  # codes, as text
    years = [d.year] if d.year is not None else []
    text = [d.group, *keys, *cov.categorical]
    outcome = [d.outcome] if d.outcome is not None else []  # text, blank when censored
    _require(df, [d.group, *times, d.event, *years, *keys, *outcome, *cov.individual], file)
    _no_missing(df, [d.group, *times, d.event, *years, *keys, *cov.individual], file)
    df = _numeric(df, [*times, d.event, *years, *numeric], file)
    finite = pa.Check(np.isfinite, name="finite")
    columns: dict[str, pa.Column] = {d.group: pa.Column(str, nullable=False)}
    for c in keys:
        columns[c] = pa.Column(str, nullable=False)
    for c in years:
        columns[c] = pa.Column(float, pa.Check(lambda y: np.mod(y, 1) == 0, name="whole years"))
    columns[d.time] = pa.Column(float, [pa.Check.gt(0), finite], nullable=False)
    if d.entry is not None:
        columns[d.entry] = pa.Column(float, [pa.Check.ge(0), finite], nullable=False)
    columns[d.event] = pa.Column(float, pa.Check.isin([0, 1]), nullable=False)
    for c in numeric:
        columns[c] = pa.Column(float, finite, nullable=False)
    for c in cov.categorical:
        columns[c] = pa.Column(str, nullable=False)
    df = df.assign(**{c: as_codes(df[c]) for c in text})
    out = _run(pa.DataFrameSchema(columns, strict=False), df, file)
    out = out[list(columns)].copy()
    for c in outcome:  # checked against the events by input.outcomes
        out[c] = df[c]
    if d.entry is not None:
        bad = out[d.time] <= out[d.entry]
        if bad.any():
            raise InputError(f"exit time must be after entry time ({d.entry!r})",
                             file=file, column=d.time, rows=_rows(bad))
    if out[d.event].sum() == 0:
        raise InputError("no events at all: nothing to estimate", file=file, column=d.event)
    # pieces of one episode count once (a level with a single spell is one episode)
    spells = out if d.episode is None else out.drop_duplicates(d.episode)
    _check_covariates(spells, numeric, cov.categorical, file)
    return out.astype({c: np.int64 for c in years})


def _check_covariates(df: pd.DataFrame, numeric: Sequence[str], categorical: Sequence[str],
                      file: str) -> None:
    for c in numeric:
        if df[c].nunique() < 2:
            raise InputError("covariate is constant: drop it from the spec", file=file, column=c)
    for c in categorical:
        counts = df[c].value_counts()
        if len(counts) < 2:
            raise InputError("categorical covariate has a single level", file=file, column=c)
        single = counts[counts == 1]
        if len(single):
            level = single.index[0]
            raise InputError(f"categorical level {level!r} has a single spell: merge it",
                             file=file, column=c,
                             rows=[int(i) + 1 for i in df.index[df[c] == level]])


def validate_municipal(df: pd.DataFrame, spec: Spec, municipalities: Sequence[str], *,
                       file: str) -> pd.DataFrame:
    """Check the municipal table: one row per municipality in the spells, numeric covariates.

    Returns
    -------
    pandas.DataFrame
        Indexed by municipality (str), in the order of ``municipalities``.

    Raises
    ------
    InputError
        On missing columns, duplicated or unknown municipalities, or municipalities missing.
    """
    _check_columns(df, file)
    key, names = spec.data.group, list(spec.covariates.municipal)
    _require(df, [key, *names], file)
    _no_missing(df, [key, *names], file)
    df = _numeric(df, names, file).assign(**{key: as_codes(df[key])})
    columns = {key: pa.Column(str, nullable=False)}
    for c in names:
        columns[c] = pa.Column(float, pa.Check(np.isfinite, name="finite"), nullable=False)
    out = _run(pa.DataFrameSchema(columns, strict=False), df, file)[list(columns)]
    dup = out[key].duplicated()
    if dup.any():
        raise InputError("municipality listed more than once", file=file, column=key,
                         rows=_rows(dup))
    known = set(municipalities)
    unknown = ~out[key].isin(known)
    if unknown.any():
        raise InputError(f"municipality {out[key][unknown].iloc[0]!r} has no spells in the data: "
                         "remove the row or check the codes", file=file, column=key,
                         rows=_rows(unknown))
    missing = sorted(known - set(out[key]))
    if missing:
        raise InputError(f"municipalities with spells have no row here: {missing[:3]}"
                         f"{' and more' if len(missing) > 3 else ''}; add one row for each",
                         file=file, column=key)
    out = out.set_index(key).loc[list(municipalities)]
    for c in spec.covariates.municipal:
        if out[c].nunique() < 2:
            raise InputError("covariate is constant: drop it from the spec", file=file, column=c)
    return out


def validate_municipal_codes(df: pd.DataFrame, spec: Spec, *, file: str) -> pd.DataFrame:
    """The municipal table with its codes as text: the municipalities that exist.

    Raises
    ------
    InputError
        If the table is empty, lacks the ``[data] group`` column or has blank codes.
    """
    _check_columns(df, file)
    _require(df, [spec.data.group], file)
    _no_missing(df, [spec.data.group], file)
    return df.assign(**{spec.data.group: as_codes(df[spec.data.group])})


def validate_municipal_years(df: pd.DataFrame, spec: Spec, *, file: str) -> pd.DataFrame:
    """Check a municipal table keyed by municipality and calendar year.

    The year column is ``[data] municipal_year``; one row per municipality and year, a
    finite number for each of ``[covariates] municipal``.

    Returns
    -------
    pandas.DataFrame
        The key columns (codes as text, years as int64) and the covariates (float).

    Raises
    ------
    InputError
        On missing columns or values, values that are not numbers, years that are not whole
        numbers, or a municipality and year listed more than once.
    """
    _check_columns(df, file)
    key, year = spec.data.group, str(spec.data.municipal_year)
    names = list(spec.covariates.municipal)
    _require(df, [key, year, *names], file)
    _no_missing(df, [key, year, *names], file)
    df = _numeric(df, [year, *names], file).assign(**{key: as_codes(df[key])})
    columns = {key: pa.Column(str), year: pa.Column(float, pa.Check(
        lambda y: np.mod(y, 1) == 0, name="whole years"))}
    for c in names:
        columns[c] = pa.Column(float, pa.Check(np.isfinite, name="finite"))
    out = _run(pa.DataFrameSchema(columns, strict=False), df, file)[list(columns)]
    dup = out.duplicated([key, year], keep=False)
    if dup.any():
        raise InputError("municipality and year listed more than once", file=file,
                         column=year, rows=_rows(dup))
    return out.astype({year: np.int64})


def check_municipal_years(table: pd.DataFrame, needed: pd.DataFrame, spec: Spec, *,
                          file: str) -> None:
    """Raise if a (municipality, year) that episodes need has no row in the checked table."""
    key, year = spec.data.group, str(spec.data.municipal_year)
    have = pd.MultiIndex.from_frame(table[[key, year]])
    want = pd.MultiIndex.from_arrays([needed.iloc[:, 0].astype(str),
                                      needed.iloc[:, 1].astype(np.int64)])
    missing = want[~want.isin(have)]
    if len(missing):
        shown = ", ".join(f"{m} {y}" for m, y in missing[:3])
        raise InputError(f"no row for municipality and year {shown}"
                         f"{' and more' if len(missing) > 3 else ''}: episodes fall in those "
                         "years; add one row for each", file=file, column=year)


def check_design(matrix: np.ndarray, names: Sequence[str], *, file: str) -> None:
    """Raise if the design matrix's columns are perfectly collinear (rank deficient).

    One QR decomposition of the centred columns: :math:`|R_{jj}|` is the part of column j
    outside the span of the columns before it, so the first (numerically) zero one names the
    first column that adds nothing (the threshold is ``numpy.linalg.matrix_rank``'s: the
    largest :math:`|R_{jj}|` times max(rows, columns) times the machine epsilon). It replaces
    an SVD per prefix of columns (0.17 of the 0.5 s that reading dk-1999-2005 took).
    """
    if matrix.shape[1] == 0:
        return
    centred = matrix - matrix.mean(axis=0)
    diagonal = np.abs(np.diag(np.linalg.qr(centred, mode="r")))
    tol = diagonal.max(initial=0.0) * max(centred.shape) * np.finfo(float).eps
    lost = np.flatnonzero(diagonal <= tol)
    if len(lost):
        j = int(lost[0])
        raise InputError(f"covariate is perfectly collinear with {list(names[:j])}: drop one "
                         "of them from the spec", file=file, column=str(names[j]))


def check_horizon(exit_months: np.ndarray, horizon: float, *, file: str, column: str) -> None:
    """Raise if nobody is followed as long as the horizon."""
    longest = float(np.max(exit_months))
    if longest < horizon:
        raise InputError(
            f"horizon_months={horizon:g} is longer than the longest follow-up "
            f"({longest:.1f} months): lower [outcome] horizon_months",
            file=file, column=column)


def check_encoding(spec: Spec, *, file: str) -> None:
    """Raise if the spec's ``[data] encoding`` is not a known text encoding."""
    try:
        codecs.lookup(spec.data.encoding)
    except LookupError:
        raise InputError(f"unknown encoding {spec.data.encoding!r}: use e.g. 'utf-8' or "
                         "'latin-1'", file=file, column="data.encoding") from None


def _with_hint(name: str, known: Sequence[str]) -> str:
    close = difflib.get_close_matches(name, known, n=1)
    return f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name)


def check_named_municipalities(names: Sequence[str], known: Sequence[str], *, source: str,
                               file: str, column: str, minimum: int = 2) -> list[str]:
    """Municipalities named for comparison: at least two different ones, all of them known.

    Parameters
    ----------
    names : sequence of str
        The names given (repeats are dropped, order is kept).
    known : sequence of str
        The municipalities of the data or of the fit.
    source : str
        Where the names were given, for the message: ``"[ranking] pairwise"``,
        ``"--municipalities"``.
    file, column : str
        The file and column that ``known`` comes from.
    minimum : int
        How many different names are needed (2: a comparison; 1: a subset to rank within).

    Returns
    -------
    list of str
        ``names`` without repeats.

    Raises
    ------
    InputError
        If ``names`` is text rather than a list, holds fewer than two different names, or
        names a municipality that is not in ``known`` (with the closest known name, if any).

    Examples
    --------
    >>> check_named_municipalities(["B", "A", "B"], ["A", "B", "C"], source="--municipalities",
    ...                            file="fit/posterior.nc", column="municipality")
    ['B', 'A']
    """
    if isinstance(names, str):
        raise InputError(f"{source} must be a list of municipality names, not the text "
                         f"{names!r}", file=file, column=column)
    unique = list(dict.fromkeys(str(m) for m in names))
    if len(unique) < minimum:
        raise InputError(f"{source} needs at least two different municipalities to compare, "
                         f"got {unique}", file=file, column=column)
    have = [str(m) for m in known]
    missing = sorted(set(unique) - set(have), key=unique.index)
    if missing:
        shown = ", ".join(_with_hint(m, have) for m in missing)
        raise InputError(f"{source}: unknown municipalit{'y' if len(missing) == 1 else 'ies'} "
                         f"{shown}; the {len(have)} known ones include {have[:5]}", file=file,
                         column=column)
    return unique
