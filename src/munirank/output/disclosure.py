"""Disclosure control: no per-person rows leave, small counts are blanked (DESIGN.md s. 7).

A count below ``min_cell`` (default 5) is blank and the row is flagged ``small_cell``. The
number of events is also blanked when the number of spells without the event is below
``min_cell``, since it could be derived from the two. Likewise, when counts that add up to a
shown total have a single one blanked, the smallest other one is blanked too
(:func:`blank_small_parts`).

Saved posteriors hold draws per municipality and per covariate only: every dimension of
every array must be on an allow-list, so a per-person array (dim ``episode``, or a
pointwise log-likelihood) cannot reach ``posterior.nc`` by accident.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd
import xarray as xr

from munirank.errors import DisclosureError

AGGREGATE_DIMS = frozenset({"chain", "draw", "municipality", "subset_municipality",
                            "old_municipality", "covariate", "municipal_covariate", "piece",
                            "period", "later_period", "period_cell",  # cell: (m, period)
                            "outcome", "outcome_pair"})
PERSON_GROUPS = frozenset({"constant_data", "observed_data", "log_likelihood",
                           "posterior_predictive", "prior_predictive", "predictions"})


def check_aggregate(tree: xr.DataTree) -> None:
    """Refuse a tree that could hold per-person data.

    Parameters
    ----------
    tree : xarray.DataTree
        What is about to be saved.

    Raises
    ------
    DisclosureError
        If a group is one of the per-person groups of ArviZ (``constant_data``,
        ``observed_data``, ``log_likelihood``, ...) or an array has a dimension outside
        :data:`AGGREGATE_DIMS`.
    """
    for node in tree.subtree:
        if node.name in PERSON_GROUPS:
            raise DisclosureError(f"group {node.path!r} holds per-person data; not saved")
        for name, array in node.dataset.variables.items():
            extra = set(array.dims) - AGGREGATE_DIMS
            if extra:
                raise DisclosureError(
                    f"{node.path}/{name} has dims {sorted(extra)} outside the aggregate "
                    f"dims {sorted(AGGREGATE_DIMS)}; not saved")


def blank_small_counts(table: pd.DataFrame, *, min_cell: int = 5,
                       spells: str = "n_spells", events: str = "n_events") -> pd.DataFrame:
    """Blank small counts and add a boolean ``small_cell`` column.

    Parameters
    ----------
    table : pandas.DataFrame
        One row per municipality with integer count columns.
    min_cell : int
        Smallest count that may be shown.
    spells, events : str
        Names of the count columns.

    Returns
    -------
    pandas.DataFrame
        A copy with nullable integer counts (``<NA>`` = blanked) and ``small_cell``.
    """
    out = table.copy()
    n, d = out[spells].astype(int), out[events].astype(int)
    hide_n = n < min_cell
    hide_d = (d < min_cell) | ((n - d) < min_cell)
    out[spells] = n.astype("Int64").mask(hide_n)
    out[events] = d.astype("Int64").mask(hide_d)
    out["small_cell"] = hide_n | hide_d
    return out


def blank_small_count(count: int, *, min_cell: int = 5) -> int | None:
    """``count``, or None (blank) when it is below ``min_cell``."""
    return None if count < min_cell else int(count)


def blank_small_parts(parts: Mapping[str, int], *, min_cell: int = 5) -> dict[str, int | None]:
    """Counts that add up to a shown total, those below ``min_cell`` blanked (None).

    If only one count is blanked, the smallest of the others is blanked too, so that no
    blanked count is the total minus the ones shown.

    Examples
    --------
    >>> blank_small_parts({"event": 120, "move": 3, "gap": 40, "end": 900})
    {'event': 120, 'move': None, 'gap': None, 'end': 900}
    """
    out = {k: blank_small_count(v, min_cell=min_cell) for k, v in parts.items()}
    hidden = [k for k, v in out.items() if v is None]
    shown = [k for k, v in out.items() if v is not None]
    if len(hidden) == 1 and shown:
        out[min(shown, key=lambda k: parts[k])] = None
    return out
