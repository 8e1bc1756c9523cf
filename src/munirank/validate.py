"""Input validation at the public boundary (pandera schemas), raising one-line InputErrors.

Every check names the file, the column and the first offending rows (numbered from 1 = the
first data row). Inner code trusts what passes here.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pandera.pandas as pa

from munirank.errors import InputError
from munirank.spec import Spec

_MAX_ROWS = 5


def _rows(mask: np.ndarray | pd.Series) -> list[int]:
    return [int(i) + 1 for i in np.flatnonzero(np.asarray(mask))[:_MAX_ROWS + 1]]


def _first_failure(err: pa.errors.SchemaErrors, file: str) -> InputError:
    cases = err.failure_cases
    missing = cases[cases["check"] == "column_in_dataframe"]
    if len(missing):
        col = str(missing["failure_case"].iloc[0])
        return InputError("required column is missing", file=file, column=col)
    first = cases.iloc[0]
    column = first["column"]
    sub = cases[cases["column"] == column]
    rows = sorted({int(i) + 1 for i in sub["index"].dropna()})
    check = str(first["check"])
    if check == "not_nullable":
        message = "missing values"
    elif check.startswith("coerce_dtype") or check.startswith("dtype"):
        message = f"values are not numeric (e.g. {sub['failure_case'].iloc[0]!r})"
    else:
        message = f"fails check {check}"
    return InputError(message, file=file, column=str(column), rows=rows)


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
        raise InputError("duplicated column name", file=file, column=str(dup[0]))


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
        The columns the model needs, with numeric columns coerced to float.

    Raises
    ------
    InputError
        Naming the file, the column and the first offending rows.
    """
    _check_columns(df, file)
    d, cov = spec.data, spec.covariates
    numeric = [c for c in cov.individual if c not in cov.categorical]
    columns: dict[str, pa.Column] = {
        d.group: pa.Column(str, nullable=False, coerce=True),
        d.time: pa.Column(float, [pa.Check.gt(0), pa.Check(np.isfinite, name="finite")],
                          coerce=True, nullable=False),
        d.event: pa.Column(float, pa.Check.isin([0, 1]), coerce=True, nullable=False),
    }
    if d.entry is not None:
        columns[d.entry] = pa.Column(float, [pa.Check.ge(0), pa.Check(np.isfinite, name="finite")],
                                     coerce=True, nullable=False)
    for c in numeric:
        columns[c] = pa.Column(float, pa.Check(np.isfinite, name="finite"),
                               coerce=True, nullable=False)
    for c in cov.categorical:
        columns[c] = pa.Column(str, nullable=False, coerce=True)
    # Missing values hide as NaN before string coercion turns them into "nan".
    for c in [d.group, *cov.categorical]:
        if c in df.columns and df[c].isna().any():
            raise InputError("missing values", file=file, column=c, rows=_rows(df[c].isna()))
    out = _run(pa.DataFrameSchema(columns, strict=False), df, file)
    out = out[list(columns)].copy()
    if d.entry is not None:
        bad = out[d.time] <= out[d.entry]
        if bad.any():
            raise InputError(f"exit time must be after entry time ({d.entry!r})",
                             file=file, column=d.time, rows=_rows(bad))
    if out[d.event].sum() == 0:
        raise InputError("no events at all: nothing to estimate", file=file, column=d.event)
    _check_covariates(out, numeric, cov.categorical, file)
    return out


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
                             file=file, column=c, rows=_rows(df[c] == level))


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
    key = spec.data.group
    columns = {key: pa.Column(str, nullable=False, coerce=True)}
    for c in spec.covariates.municipal:
        columns[c] = pa.Column(float, pa.Check(np.isfinite, name="finite"),
                               coerce=True, nullable=False)
    if key in df.columns and df[key].isna().any():
        raise InputError("missing values", file=file, column=key, rows=_rows(df[key].isna()))
    out = _run(pa.DataFrameSchema(columns, strict=False), df, file)[list(columns)]
    dup = out[key].duplicated()
    if dup.any():
        raise InputError("municipality listed more than once", file=file, column=key,
                         rows=_rows(dup))
    known = set(municipalities)
    unknown = ~out[key].isin(known)
    if unknown.any():
        raise InputError("municipality has no spells in the data", file=file, column=key,
                         rows=_rows(unknown))
    missing = sorted(known - set(out[key]))
    if missing:
        raise InputError(f"municipalities in the spells are missing here: {missing[:5]}",
                         file=file, column=key)
    out = out.set_index(key).loc[list(municipalities)]
    for c in spec.covariates.municipal:
        if out[c].nunique() < 2:
            raise InputError("covariate is constant: drop it from the spec", file=file, column=c)
    return out


def check_design(matrix: np.ndarray, names: Sequence[str], *, file: str) -> None:
    """Raise if the design matrix's columns are perfectly collinear (rank deficient)."""
    if matrix.shape[1] == 0:
        return
    centred = matrix - matrix.mean(axis=0)
    rank = np.linalg.matrix_rank(centred)
    if rank < matrix.shape[1]:
        # find the first column that adds nothing to the ones before it
        for j in range(1, matrix.shape[1] + 1):
            if np.linalg.matrix_rank(centred[:, :j]) < j:
                raise InputError("covariate is perfectly collinear with earlier covariates",
                                 file=file, column=str(names[j - 1]))


def check_horizon(exit_months: np.ndarray, horizon: float, *, file: str, column: str) -> None:
    """Raise if nobody is followed as long as the horizon."""
    longest = float(np.max(exit_months))
    if longest < horizon:
        raise InputError(
            f"horizon_months={horizon:g} is longer than the longest follow-up "
            f"({longest:.1f} months): lower [outcome] horizon_months",
            file=file, column=column)
