r"""Pieces of split episodes, municipal cells by year, old municipalities nested in new ones.

Three optional structures of the episode table, each switched on by a ``[data]`` key (all
off: the episodes are built exactly as before, :mod:`munirank.input.episodes`):

- ``episode``: the rows are pieces of episodes (split at 1 January, ``[registers]
  split_years``), and pieces of one episode share this number. They must lie in one
  municipality, and only an episode's last piece may have the event. Piece p of episode e
  gets the weight :math:`w_p = (t_p - s_p) / \sum_{q \in e} (t_q - s_q)`, its share of the
  episode's time at risk (an episode's weights add up to 1). Counts (``n_spells``) and means
  over episodes (the standardisation of the individual covariates, the effects in months)
  then count episodes, not pieces.
- ``year`` with ``municipal_year``: the municipal table is keyed by municipality and calendar
  year, and each piece reads its municipality's row of its year. The model's segments
  (:mod:`munirank.model.cells`) are the *cells*, the (municipality, year) pairs present.
- ``parent``: each row's new municipality (``<group>_new`` from ``munirank episodes`` with
  ``crosswalk_level = "old"``). The group's (old) municipalities are nested in these, which
  are ranked; every old municipality must have exactly one parent. Municipal covariates stay
  with the group's municipalities (the old ones): they describe where a person lived.

Municipal covariates by year are standardised over municipalities as in the unsplit model,
each municipality's cells sharing its weight:
:math:`\bar z = M^{-1}\sum_m |C_m|^{-1}\sum_{c \in C_m} z_c` and
:math:`s^2 = M^{-1}\sum_m |C_m|^{-1}\sum_{c \in C_m} (z_c - \bar z)^2`, with :math:`C_m` the
cells of municipality m. A table constant over years therefore gives the unsplit model's
:math:`\bar z` and :math:`s` (and the same prior on gamma), and the within-municipality
changes over years count towards the SD.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from munirank.errors import InputError
from munirank.input import validate
from munirank.input.spec import Spec
from munirank.input.years import municipal_by_year

CELL = "cell"
OLD = "old_municipality"


def uses_cells(spec: Spec) -> bool:
    """Whether the model's segments are cells: a municipal table by year, or nesting."""
    d = spec.data
    return d.parent is not None or (d.municipal_year is not None
                                    and bool(spec.covariates.municipal))


def fit_only(spec: Spec, command: str, *, file: str = "spec") -> None:
    """Refuse split or nested episodes, or periods, in a command that does not read them yet.

    Raises
    ------
    InputError
        Naming the first of ``[data] episode``, ``year``, ``parent`` and ``period`` that the
        spec sets.
    """
    d = spec.data
    for key in ("episode", "year", "parent", "period"):
        if getattr(d, key) is not None:
            what = "measurement periods" if key == "period" else "split or nested episodes"
            raise InputError(f"{command} does not read {what} yet (only fit does): leave "
                             f"[data] {key} out, or use munirank fit", file=file,
                             column=f"data.{key}")
    if getattr(d, "outcome", None) is not None:
        raise InputError(f"{command} does not read competing outcomes yet (only fit does): "
                         "leave [data] outcome out for the combined outcome, or use munirank "
                         "fit", file=file, column="data.outcome")


def _rows(spells: pd.DataFrame, mask: np.ndarray) -> list[int]:
    return [int(i) + 1 for i in spells.index[np.asarray(mask)][:6]]


def pieces(spells: pd.DataFrame, spec: Spec, length: np.ndarray, *,
           file: str) -> tuple[np.ndarray, np.ndarray]:
    """The unsplit episode (a code) and the weight of each piece (module docstring).

    Raises
    ------
    InputError
        If the pieces of one episode lie in two municipalities, or an episode has an event on
        a piece other than its last.
    """
    d = spec.data
    codes = pd.factorize(spells[d.episode])[0]
    spread = spells.groupby(codes)[d.group].transform("nunique").to_numpy() > 1
    if spread.any():  # (a parent is one per municipality: checked by parents())
        first = codes[np.argmax(spread)]
        raise InputError(f"the pieces of episode {spells[d.episode].iloc[np.argmax(spread)]} "
                         f"lie in municipalities {sorted(set(spells[d.group][codes == first]))}"
                         ": an episode is one stay in one municipality (check [data] episode "
                         f"= {d.episode!r})", file=file, column=d.group,
                         rows=_rows(spells, codes == first))
    exit_ = spells[d.time].to_numpy(float)
    last = pd.Series(exit_).groupby(codes).transform("max").to_numpy()
    early = (spells[d.event].to_numpy() == 1) & (exit_ < last)
    if early.any():
        raise InputError("an event on a piece that is not its episode's last (the pieces of "
                         f"one episode share [data] episode = {d.episode!r})", file=file,
                         column=d.event, rows=_rows(spells, early))
    total = np.bincount(codes, weights=length)
    return codes, length / total[codes]


def parents(spells: pd.DataFrame, spec: Spec, *, file: str) -> pd.Series:
    """Each old municipality's new one (index: old codes, sorted).

    Raises
    ------
    InputError
        If an old municipality has rows with two different new municipalities.
    """
    d = spec.data
    pairs = spells[[d.group, d.parent]].drop_duplicates()
    twice = pairs[d.group].duplicated(keep=False).to_numpy()
    if twice.any():
        code = pairs[d.group].to_numpy()[np.argmax(twice)]
        news = pairs[pairs[d.group] == code]
        raise InputError(f"old municipality {code!r} has {len(news)} new municipalities "
                         f"({', '.join(map(repr, news[d.parent]))}): each must nest in exactly "
                         "one (check the crosswalk)", file=file, column=d.parent,
                         rows=[int(i) + 1 for i in news.index])
    return pairs.set_index(d.group)[d.parent].sort_index()


def _standardised(raw: np.ndarray, unit: np.ndarray, names: list[str],
                  file: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cells' covariates standardised over units, each unit's cells sharing its weight."""
    n_unit = int(unit.max()) + 1 if len(unit) else 0
    weight = 1.0 / np.bincount(unit, minlength=n_unit)[unit] / n_unit
    centre = weight @ raw
    scale = np.sqrt(weight @ (raw - centre) ** 2)
    for j, c in enumerate(names):
        if scale[j] == 0:
            raise InputError("covariate is constant: drop it from the spec", file=file, column=c)
    z = (raw - centre) / scale
    validate.check_design(z, names, file=file)
    return z, centre, scale


def _cell_covariates(cells: pd.DataFrame, spec: Spec, units: list[str],
                     municipal: pd.DataFrame | None, file: str) -> np.ndarray:
    """Raw municipal covariates of each cell (units x years, or units)."""
    d, names = spec.data, list(spec.covariates.municipal)
    if municipal is None or not names:
        return np.zeros((len(cells), 0))
    if "year" not in cells:
        table = validate.validate_municipal(municipal, spec, units, file=file)
        return table.loc[cells["unit"], names].to_numpy(float)
    table = validate.validate_municipal_years(municipal, spec, file=file)
    unknown = ~table[d.group].isin(set(units)).to_numpy()
    if unknown.any():
        raise InputError(f"municipality {table[d.group][unknown].iloc[0]!r} has no spells in "
                         "the data: remove its rows or check the codes", file=file,
                         column=d.group, rows=[int(i) + 1 for i in np.flatnonzero(unknown)[:6]])
    needed = cells.rename(columns={"unit": d.group})
    validate.check_municipal_years(table, needed, spec, file=file)
    joined = municipal_by_year(needed, table, group=d.group, year="year",
                               table_year=d.municipal_year, file=file)
    return joined[names].to_numpy(float)


def cell_dataset(spells: pd.DataFrame, spec: Spec, event: np.ndarray,
                 municipal: pd.DataFrame | None, *, episode: np.ndarray | None,
                 file: str, municipal_file: str) -> xr.Dataset:
    """The cells and, with ``[data] parent``, the old municipalities (module docstring).

    Returns
    -------
    xarray.Dataset
        ``episode_cell`` (``episode``: the row's cell, an integer), ``cell_unit`` (``cell``:
        the municipality, or old municipality, whose effect the cell has), ``cell_year``,
        ``z_cell`` (``cell``, ``municipal_covariate``), ``z_centre``, ``z_scale``; with
        nesting ``old_parent``, ``n_spells_old`` and ``n_events_old`` (``old_municipality``).
    """
    d = spec.data
    unit = spells[d.group].astype(str).to_numpy()
    by_year = d.municipal_year is not None and bool(spec.covariates.municipal)
    keys = {"unit": unit} | ({"year": spells[d.year].to_numpy(np.int64)} if by_year else {})
    frame = pd.DataFrame(keys)
    cells = frame.drop_duplicates().sort_values(list(keys)).reset_index(drop=True)
    episode_cell = pd.MultiIndex.from_frame(cells).get_indexer(pd.MultiIndex.from_frame(frame))
    units = sorted(set(unit))
    unit_code = pd.Index(units).get_indexer(cells["unit"])
    names = list(spec.covariates.municipal)
    raw = _cell_covariates(cells, spec, units, municipal, municipal_file)
    z, centre, scale = (_standardised(raw, unit_code, names, municipal_file) if names
                        else (raw, np.zeros(0), np.zeros(0)))
    ds = xr.Dataset(
        {"episode_cell": ("episode", episode_cell.astype(np.int64)),
         "cell_unit": (CELL, cells["unit"].to_numpy(object)),
         "cell_year": (CELL, cells["year"].to_numpy() if by_year
                       else np.zeros(len(cells), np.int64)),
         "z_cell": ((CELL, "municipal_covariate"), z),
         "z_centre": ("municipal_covariate", centre), "z_scale": ("municipal_covariate", scale)},
        coords={CELL: np.arange(len(cells)), "municipal_covariate": names})
    if d.parent is not None:
        ds = ds.merge(_old_municipalities(spells, spec, units, event, episode, file))
    return ds


def _old_municipalities(spells: pd.DataFrame, spec: Spec, units: list[str], event: np.ndarray,
                        episode: np.ndarray | None, file: str) -> xr.Dataset:
    parent = parents(spells, spec, file=file)
    code = pd.Index(units).get_indexer(spells[spec.data.group].astype(str))
    n_spells, n_events = spell_counts(code, event, episode, len(units))
    return xr.Dataset({"old_parent": (OLD, parent.loc[units].to_numpy(object)),
                       "n_spells_old": (OLD, n_spells), "n_events_old": (OLD, n_events)},
                      coords={OLD: units})


def spell_counts(code: np.ndarray, event: np.ndarray, episode: np.ndarray | None,
                 n: int) -> tuple[np.ndarray, np.ndarray]:
    """Episodes (unsplit: pieces of one count once) and events per unit code."""
    first = (np.unique(episode, return_index=True)[1] if episode is not None
             else np.arange(len(code)))
    return (np.bincount(code[first], minlength=n).astype(np.int64),
            np.bincount(code, weights=event, minlength=n).astype(np.int64))


def piece_weights(episodes: xr.Dataset) -> np.ndarray | None:
    """Each row's share of its unsplit episode's time at risk (None: rows are episodes)."""
    return episodes["piece_weight"].to_numpy() if "piece_weight" in episodes else None


def unsplit_entry(episodes: xr.Dataset) -> np.ndarray:
    """Each row's unsplit episode's entry time (0: a person's first episode)."""
    entry = episodes["entry"].to_numpy()
    if "unsplit_episode" not in episodes:
        return entry
    codes = episodes["unsplit_episode"].to_numpy()
    first = np.full(int(codes.max()) + 1, np.inf)
    np.minimum.at(first, codes, entry)
    return first[codes]
