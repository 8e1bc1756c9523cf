r"""Measurement periods (``[data] period``): the cells (municipality, period) of the episodes.

Each row carries its measurement period (a report year, an arrival cohort). Periods are
ordered by value: numerically when every label is a number, else as text. The model's
segments (:mod:`munirank.model.periods`) are the *period cells*, the (municipality, period)
pairs present in the data; a municipality present in one period only has one cell and is
kept. Counts per cell (episodes, events) are the per-period counts of municipalities.csv.

Bad input, each refused with one line naming the file, the column and rows: a period column
with one value (nothing to compare), more than :data:`munirank.input.spec.MAX_PERIODS`
periods, a period with no events (its baseline could not be estimated).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from munirank.errors import InputError
from munirank.input.spec import MAX_PERIODS, Spec

PERIOD = "period"
PERIOD_CELL = "period_cell"


def ordered_periods(labels: pd.Series) -> list[str]:
    """The distinct period labels in order: numerically if all are numbers, else as text."""
    distinct = pd.unique(labels.astype(str))
    numbers = pd.to_numeric(pd.Series(distinct), errors="coerce")
    if numbers.notna().all():
        return [str(v) for v in np.asarray(distinct)[np.argsort(numbers.to_numpy(),
                                                                 kind="stable")]]
    return sorted(str(v) for v in distinct)


def _rows(spells: pd.DataFrame, mask: np.ndarray) -> list[int]:
    return [int(i) + 1 for i in spells.index[mask][:6]]


def check_periods(spells: pd.DataFrame, spec: Spec, event: np.ndarray, *,
                  file: str) -> list[str]:
    """The ordered periods, checked (module docstring).

    Raises
    ------
    InputError
        One value only, more than ``MAX_PERIODS`` values, or a period without events.
    """
    column = spec.data.period
    labels = spells[column].astype(str)
    periods = ordered_periods(labels)
    if len(periods) < 2:
        raise InputError(f"the period column has one value only ({periods[0]!r}): periods "
                         "compare two or more measurements; leave [data] period out for one",
                         file=file, column=column)
    if len(periods) > MAX_PERIODS:
        raise InputError(f"{len(periods)} periods, more than {MAX_PERIODS}: is {column!r} a "
                         "period (a report year, an arrival cohort) and not a date or an id?",
                         file=file, column=column)
    events = pd.Series(event).groupby(labels.to_numpy()).sum()
    empty = [p for p in periods if events.get(p, 0) == 0]
    if empty:
        raise InputError(f"period {empty[0]!r} has no events: its baseline cannot be "
                         "estimated (merge it with a neighbour or drop its rows)", file=file,
                         column=column, rows=_rows(spells, (labels == empty[0]).to_numpy()))
    return periods


def period_dataset(spells: pd.DataFrame, spec: Spec, event: np.ndarray,
                   municipalities: list[str], *, file: str) -> xr.Dataset:
    """The period cells of validated spells.

    Returns
    -------
    xarray.Dataset
        ``episode_period`` and ``episode_period_cell`` (``episode``: indices),
        ``cell_municipality`` and ``cell_period`` (``period_cell``: indices into
        ``municipality`` and ``period``), ``n_spells_cell``, ``n_events_cell``; coords
        ``period`` (labels, ordered) and ``period_cell``.
    """
    periods = check_periods(spells, spec, event, file=file)
    period = pd.Index(periods).get_indexer(spells[spec.data.period].astype(str))
    muni = pd.Index(municipalities).get_indexer(spells[spec.data.group].astype(str))
    key = muni * len(periods) + period
    cells, episode_cell = np.unique(key, return_inverse=True)
    n_cell = len(cells)
    return xr.Dataset(
        {"episode_period": ("episode", period.astype(np.int64)),
         "episode_period_cell": ("episode", episode_cell.astype(np.int64)),
         "cell_municipality": (PERIOD_CELL, (cells // len(periods)).astype(np.int64)),
         "cell_period": (PERIOD_CELL, (cells % len(periods)).astype(np.int64)),
         "n_spells_cell": (PERIOD_CELL, np.bincount(episode_cell, minlength=n_cell)),
         "n_events_cell": (PERIOD_CELL, np.bincount(episode_cell, weights=event,
                                                    minlength=n_cell).astype(np.int64))},
        coords={PERIOD: periods, PERIOD_CELL: np.arange(n_cell)})
