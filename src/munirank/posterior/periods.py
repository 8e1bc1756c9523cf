r"""Everything municipalities.csv says, per measurement period (``[data] period``).

Period p is summarised as a one-period fit would be: its episodes, its municipalities, the
baseline :math:`\beta_0 + \delta_p`, the effects :math:`u_{m,p}` of its cells
(:mod:`munirank.model.periods`). :func:`period_view` builds that posterior and those episodes,
and the one-period functions of :mod:`munirank.posterior.tables` run on them unchanged:
effects in months over the municipality's own episodes of the period, ranks within the
period (over the municipalities present in it), intervals, P(top k), shrinkage (against the
SD of one period's effects). municipalities.csv is then the periods' tables one below the
other with a ``period`` column (long form); ``derived`` in posterior.nc has a ``period``
dim (NaN where a municipality is absent from a period).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from munirank.input.periods import PERIOD, PERIOD_CELL
from munirank.input.spec import Spec
from munirank.model.periods import period_shift, total_sd
from munirank.posterior import tables


def period_view(posterior: xr.Dataset, episodes: xr.Dataset,
                period: str) -> tuple[xr.Dataset, xr.Dataset]:
    """The posterior and episodes of one period, shaped as a one-period fit's.

    Returns
    -------
    tuple of xarray.Dataset
        The posterior with ``alpha``, ``beta0`` (+ the period's shift), ``beta``, ``gamma``,
        ``sigma`` (the SD of one period's effects) and ``u`` (the period's municipalities);
        the period's episodes with ``n_spells`` and ``n_events`` of the period.
    """
    p = list(episodes[PERIOD].to_numpy()).index(period)
    cells = np.flatnonzero(episodes["cell_period"].to_numpy() == p)
    names = episodes["municipality"].to_numpy()[episodes["cell_municipality"].to_numpy()[cells]]
    rows = episodes["episode_period"].to_numpy() == p
    ep = (episodes.isel(episode=np.flatnonzero(rows))
          .drop_vars(["episode_period", "episode_period_cell"])
          .drop_dims([PERIOD, PERIOD_CELL]).sel(municipality=names))
    ep["n_spells"] = ("municipality", episodes["n_spells_cell"].to_numpy()[cells])
    ep["n_events"] = ("municipality", episodes["n_events_cell"].to_numpy()[cells])
    u = (posterior["u_cell"].isel({PERIOD_CELL: cells}).rename({PERIOD_CELL: "municipality"})
         .assign_coords(municipality=names))
    view = xr.Dataset({
        "alpha": posterior["alpha"], "beta": posterior["beta"], "gamma": posterior["gamma"],
        "beta0": posterior["beta0"] + period_shift(posterior, episodes[PERIOD].to_numpy()
                                                   .tolist()).sel({PERIOD: period}, drop=True),
        "sigma": total_sd(posterior), "u": u})
    return view, ep


def period_spec(spec: Spec, municipalities: list[str]) -> Spec:
    """The spec of one period: ``[ranking] subset`` and ``pairwise`` kept where present."""
    present = set(municipalities)
    subset = tuple(m for m in spec.ranking.subset if m in present)
    pairwise = tuple(m for m in spec.ranking.pairwise if m in present)
    return replace(spec, ranking=replace(spec.ranking, subset=subset if len(subset) > 1 else (),
                                         pairwise=pairwise if len(pairwise) > 1 else ()))


def period_results(posterior: xr.Dataset, episodes: xr.Dataset, spec: Spec, *,
                   converged: bool) -> dict[str, tuple[xr.Dataset, pd.DataFrame, Spec]]:
    """Per period (in order): its derived draws, its municipalities table and its spec."""
    out = {}
    for period in episodes[PERIOD].to_numpy().tolist():
        view, ep = period_view(posterior, episodes, period)
        spec_p = period_spec(spec, ep["municipality"].to_numpy().tolist())
        derived = tables.derived_draws(view, ep, spec_p)
        table = tables.municipality_table(view, derived, ep, spec_p, converged=converged)
        out[period] = (derived, table, spec_p)
    return out


def long_table(results: dict[str, tuple[xr.Dataset, pd.DataFrame, Spec]]) -> pd.DataFrame:
    """municipalities.csv with periods: the periods' tables stacked, ``period`` second."""
    parts = [table.assign(period=period) for period, (_, table, _) in results.items()]
    out = pd.concat(parts, ignore_index=True)
    first = ["municipality", "period"]
    out = out[first + [c for c in out.columns if c not in first]]
    out.attrs.update(parts[0].attrs)
    return out


def stacked_derived(results: dict[str, tuple[xr.Dataset, pd.DataFrame, Spec]]) -> xr.Dataset:
    """The periods' derived draws along a ``period`` dim (NaN where a municipality is absent)."""
    keep = ["observed_months", "expected_months", "effect_months", "rank"]
    parts = [derived[keep].astype(float) for derived, _, _ in results.values()]
    return xr.concat(parts, dim=pd.Index(list(results), name=PERIOD), join="outer",
                     fill_value=np.nan)


@dataclass(frozen=True)
class PeriodResults:
    """What a fit with periods reports beyond the one-period files."""

    results: dict[str, tuple[xr.Dataset, pd.DataFrame, Spec]]
    derived: xr.Dataset          # stacked along ``period``
    municipalities: pd.DataFrame  # long form
    changes: pd.DataFrame         # changes.csv
    summary: dict[str, Any]       # periods.json


def summarised(posterior: xr.Dataset, episodes: xr.Dataset, spec: Spec, *,
               converged: bool = False) -> PeriodResults:
    """Per-period tables, changes.csv and periods.json from the posterior of a period model.

    ``converged`` fills the tables' column; :func:`with_converged` sets it afterwards (the
    fit computes these while the convergence statistics are computed).
    """
    from munirank.posterior.changes import change_table, periods_summary

    results = period_results(posterior, episodes, spec, converged=converged)
    changes = change_table(results, spec)
    changes = changes.assign(converged=converged)
    return PeriodResults(results=results, derived=stacked_derived(results),
                         municipalities=long_table(results), changes=changes,
                         summary=periods_summary(posterior, results, spec))


def with_converged(found: PeriodResults, converged: bool) -> PeriodResults:
    """The results with the convergence gate's verdict in the tables' ``converged`` column."""
    return replace(found, municipalities=found.municipalities.assign(converged=converged),
                   changes=found.changes.assign(converged=converged))


def write_period_files(folder: Path, found: PeriodResults) -> None:
    """changes.csv, periods.json and the ranking files and statements per period."""
    from munirank.output import files
    from munirank.posterior.period_statements import write_period_statements

    files.write_csv(found.changes, folder / "changes.csv")
    files.write_json(found.summary, folder / "periods.json")
    write_period_statements(found.results, found.summary, found.changes, folder)
