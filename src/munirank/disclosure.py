"""Disclosure control: no per-person rows leave, small counts are blanked (DESIGN.md s. 7).

A count below ``min_cell`` (default 5) is blank and the row is flagged ``small_cell``. The
number of events is also blanked when the number of spells without the event is below
``min_cell``, since it could be derived from the two.
"""

from __future__ import annotations

import pandas as pd


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
