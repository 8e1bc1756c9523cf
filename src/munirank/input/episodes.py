"""Validated episodes with named dimensions, from a spell table and the spec.

An *episode* is one row (entry, exit] in one municipality: a person who moves contributes a
censored episode in the first municipality and a delayed-entry episode in the next. Times are
converted to months. Individual covariates are standardised (numeric: (x - mean) / sd;
categorical: dummy-coded against the most frequent level, then centred), municipal covariates
are standardised over the municipalities in the data. The episodes are an ``xarray.Dataset``
with dims ``episode``, ``municipality``, ``covariate``, ``municipal_covariate``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from munirank.errors import InputError
from munirank.input import cells, outcomes, validate
from munirank.input.read import read_table
from munirank.input.spec import TIME_UNITS_PER_MONTH, Spec


def _design(df: pd.DataFrame, spec: Spec, weight: np.ndarray | None = None,
            ) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Standardised individual design matrix, names, centres and scales.

    ``weight``: each row's share of its episode (pieces of split episodes), so that means
    and SDs are over episodes, not pieces.
    """
    cov = spec.covariates
    blocks, names, centres, scales = [], [], [], []

    def mean(v: np.ndarray) -> float:
        return v.mean() if weight is None else float(weight @ v / weight.sum())

    for c in cov.individual:
        if c in cov.categorical:
            counts = (df[c].value_counts() if weight is None
                      else pd.Series(weight).groupby(df[c].to_numpy()).sum().round(6)
                      .sort_values(ascending=False, kind="stable"))
            levels = counts.index.tolist()  # most frequent first = reference
            for level in sorted(levels[1:]):
                col = (df[c] == level).to_numpy(float)
                blocks.append(col)
                names.append(f"{c}[{level}]")
                centres.append(mean(col))
                scales.append(1.0)
        else:
            x = df[c].to_numpy(float)
            blocks.append(x)
            names.append(c)
            centres.append(mean(x))
            scales.append(x.std() if weight is None else np.sqrt(mean((x - mean(x)) ** 2)))
    if not blocks:
        return np.zeros((len(df), 0)), [], np.zeros(0), np.zeros(0)
    raw = np.column_stack(blocks)
    centre, scale = np.asarray(centres), np.asarray(scales)
    return (raw - centre) / scale, names, centre, scale


def build_episodes(spells: pd.DataFrame, spec: Spec, *, file: str = "data",
                   municipal: pd.DataFrame | None = None,
                   municipal_file: str = "municipal table") -> xr.Dataset:
    """Turn validated spells (and the municipal table) into an episodes Dataset.

    Parameters
    ----------
    spells : pandas.DataFrame
        Output of :func:`munirank.input.validate.validate_spells`.
    spec : Spec
        The analysis spec.
    file : str
        Name of the spells file, for messages.
    municipal : pandas.DataFrame, optional
        The raw municipal table, one row per municipality.
    municipal_file : str
        Name of the municipal file, for messages.

    Returns
    -------
    xarray.Dataset
        Variables ``entry``, ``exit`` (months), ``event`` and ``episode_municipality``
        (dim ``episode``); ``x`` (``episode``, ``covariate``); ``z`` (``municipality``,
        ``municipal_covariate``); ``n_spells``, ``n_events`` (``municipality``); centres and
        scales of the covariates. With ``[data] episode``, ``year`` or ``parent`` (pieces,
        cells by year, nesting; :mod:`munirank.input.cells`) the ranked municipalities are the
        parents, the counts are of unsplit episodes, and ``unsplit_episode``,
        ``piece_weight``, the ``cell`` and ``old_municipality`` variables come instead of
        ``z``.
    """
    d = spec.data
    per_month = TIME_UNITS_PER_MONTH[d.time_unit]
    exit_m = spells[d.time].to_numpy(float) / per_month
    entry_m = (spells[d.entry].to_numpy(float) / per_month if d.entry else np.zeros(len(spells)))
    event = spells[d.event].to_numpy(np.int8)
    # ranked: the group's municipalities, or with nesting the new ones they belong to
    group = spells[d.parent if d.parent else d.group].astype(str).to_numpy()
    validate.check_horizon(exit_m, spec.outcome.horizon_months, file=file, column=d.time)
    episode, weight = (cells.pieces(spells, spec, exit_m - entry_m, file=file) if d.episode
                       else (None, None))
    x, names, centre, scale = _design(spells, spec, weight)
    validate.check_design(x, names, file=file)
    municipalities = sorted(set(group))
    if spec.ranking.pairwise:  # checked before sampling, so a typo costs no fit
        validate.check_named_municipalities(spec.ranking.pairwise, municipalities,
                                            source="[ranking] pairwise", file=file,
                                            column=d.parent or d.group)
    if spec.ranking.subset and d.parent:  # nested: the new municipalities are ranked
        validate.check_named_municipalities(spec.ranking.subset, municipalities,
                                            source="[ranking] subset", file=file,
                                            column=d.parent or d.group, minimum=1)
    ds = xr.Dataset(
        {
            "entry": ("episode", entry_m),
            "exit": ("episode", exit_m),
            "event": ("episode", event),
            "episode_municipality": ("episode", group.astype(object)),
            "x": (("episode", "covariate"), x),
            "x_centre": ("covariate", centre),
            "x_scale": ("covariate", scale),
        },
        coords={"episode": np.arange(len(spells)), "covariate": names,
                "municipality": municipalities},
    )
    if episode is None and not cells.uses_cells(spec):  # the episodes as they always were
        counts = pd.Series(event).groupby(group)
        ds["n_spells"] = ("municipality", counts.size().loc[municipalities].to_numpy())
        ds["n_events"] = ("municipality", counts.sum().loc[municipalities].to_numpy().astype(int))
        ds = ds.merge(_municipal(spec, municipal, municipalities, municipal_file))
        if d.period is not None:  # measurement periods (input.periods)
            from munirank.input.periods import period_dataset

            ds = ds.merge(period_dataset(spells, spec, event, municipalities, file=file))
    else:
        ds = ds.merge(_split_or_nested(spells, spec, event, municipalities, municipal,
                                       episode=episode, weight=weight, file=file,
                                       municipal_file=municipal_file))
    if d.outcome is not None:  # competing outcomes (input.outcomes)
        ds = ds.merge(outcome_dataset(spells[d.outcome], event, group, municipalities, spec,
                                      file=file))
    ds.attrs.update(time_unit="months", horizon_months=float(spec.outcome.horizon_months),
                    source=str(file))
    return ds


def outcome_dataset(values: pd.Series, event: np.ndarray, group: np.ndarray,
                    municipalities: list[str], spec: Spec, *, file: str) -> xr.Dataset:
    """Each episode's outcome (-1 = censored), the labels and events per municipality."""
    codes, labels = outcomes.outcome_labels(values, event, spec, file=file)
    m = pd.Index(municipalities).get_indexer(group)
    counts = np.zeros((len(municipalities), len(labels)), np.int64)
    np.add.at(counts, (m[codes >= 0], codes[codes >= 0]), 1)
    return xr.Dataset({"episode_outcome": ("episode", codes),
                       "n_events_outcome": (("municipality", "outcome"), counts)},
                      coords={"outcome": labels, "municipality": municipalities})


def _split_or_nested(spells: pd.DataFrame, spec: Spec, event: np.ndarray,
                     municipalities: list[str], municipal: pd.DataFrame | None, *,
                     episode: np.ndarray | None, weight: np.ndarray | None, file: str,
                     municipal_file: str) -> xr.Dataset:
    """Counts by unsplit episode, piece weights, cells and nesting (:mod:`.cells`)."""
    ranked = spells[spec.data.parent or spec.data.group].astype(str)
    code = pd.Index(municipalities).get_indexer(ranked)
    n_spells, n_events = cells.spell_counts(code, event, episode, len(municipalities))
    ds = xr.Dataset({"n_spells": ("municipality", n_spells),
                     "n_events": ("municipality", n_events)},
                    coords={"municipality": municipalities})
    if episode is not None:
        ds["unsplit_episode"] = ("episode", episode.astype(np.int64))
        ds["piece_weight"] = ("episode", weight)
    if cells.uses_cells(spec):
        return ds.merge(cells.cell_dataset(spells, spec, event, municipal, episode=episode,
                                           file=file, municipal_file=municipal_file))
    return ds.merge(_municipal(spec, municipal, municipalities, municipal_file))


def _municipal(spec: Spec, table: pd.DataFrame | None, municipalities: list[str],
               file: str) -> xr.Dataset:
    names = list(spec.covariates.municipal)
    if table is None or not names:
        z = np.zeros((len(municipalities), 0))
        centre = scale = np.zeros(0)
    else:
        checked = validate.validate_municipal(table, spec, municipalities, file=file)
        raw = checked[names].to_numpy(float)
        centre, scale = raw.mean(axis=0), raw.std(axis=0)
        z = (raw - centre) / scale
        validate.check_design(z, names, file=file)
    return xr.Dataset(
        {"z": (("municipality", "municipal_covariate"), z),
         "z_centre": ("municipal_covariate", centre), "z_scale": ("municipal_covariate", scale)},
        coords={"municipality": municipalities, "municipal_covariate": names},
    )


def load_episodes(data_path: str | Path, spec: Spec) -> xr.Dataset:
    """Read, validate and build episodes from a data file and a spec (the public boundary).

    Parameters
    ----------
    data_path : str or Path
        Spell file (.csv, .parquet, .dta, .sas7bdat, .xpt).
    spec : Spec
        Loaded spec; its municipal table path is relative to the spec file.

    Returns
    -------
    xarray.Dataset
        See :func:`build_episodes`.

    Raises
    ------
    InputError
        On any problem with the files.
    """
    file = str(data_path)
    d = spec.data
    _check_keys(spec)
    outcomes.check_outcome_keys(spec)
    codes = tuple(c for c in (d.group, d.parent, d.episode, d.period, d.outcome)
                  if c is not None)
    raw = read_table(data_path, encoding=d.encoding, str_columns=codes)
    spells = validate.validate_spells(raw, spec, file=file)
    municipal = None
    municipal_path = spec.resolve(spec.data.municipal_table)
    if municipal_path is not None and spec.covariates.municipal:
        municipal = read_table(municipal_path, encoding=spec.data.encoding,
                               str_columns=(spec.data.group,))
    ds = build_episodes(spells, spec, file=file, municipal=municipal,
                        municipal_file=str(municipal_path))
    if len(ds.episode) < 2:
        raise InputError("need at least two spells", file=file)
    return ds


def _check_keys(spec: Spec) -> None:
    """The ``[data]`` keys of split episodes that only make sense together."""
    d = spec.data
    if d.municipal_year is not None and d.year is None:
        raise InputError("a municipal table keyed by year (data.municipal_year) needs the "
                         "episode table's calendar-year column: set [data] year (munirank "
                         "episodes writes 'year')", column="data.year")
    if d.year is not None and d.episode is None:
        raise InputError("pieces of episodes split at years need the column numbering the "
                         "unsplit episodes: set [data] episode (munirank episodes writes "
                         "'episode')", column="data.episode")


def as_codes(episodes: xr.Dataset) -> np.ndarray:
    """Integer code of each episode's municipality, in the order of the municipality coord."""
    cat = pd.Categorical(episodes["episode_municipality"].to_numpy(),
                         categories=episodes["municipality"].to_numpy())
    return np.asarray(cat.codes, dtype=np.int64)
