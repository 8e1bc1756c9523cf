"""The slope chart of rank changes between two periods (``[data] period``; draws nothing new).

It draws what municipalities.csv (each period's mean rank and rank interval) and changes.csv
(P(improved)) hold: one line per municipality present in both periods, from its mean rank in
the first to its mean rank in the second, with the rank intervals at both ends; green where
it improved with probability at least ``ci_prob``, red where it worsened with that
probability, grey otherwise. Above :data:`munirank.reporting.plots.MAX_LABELS`
municipalities only the coloured ones are named and have their intervals drawn.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from munirank.reporting.plots import FAST, MAX_LABELS, NEUTRAL, SLOW, _axes, _figure, _pct


def plot_rank_changes(municipalities: pd.DataFrame, changes: pd.DataFrame, *,
                      period_from: str, period_to: str, ci_prob: float = 0.9) -> Figure:
    """Slope chart with intervals: mean rank (1 = fastest) in two periods per municipality.

    Parameters
    ----------
    municipalities : pandas.DataFrame
        municipalities.csv in long form (``period``, ``rank_mean``, ``rank_lo``, ``rank_hi``).
    changes : pandas.DataFrame
        changes.csv (``period_from``, ``period_to``, ``p_improved``).
    period_from, period_to : str
        The two periods.
    ci_prob : float
        Probability of the rank intervals and of the colour rule.

    Returns
    -------
    matplotlib.figure.Figure
    """
    rows = changes[(changes["period_from"].astype(str) == period_from)
                   & (changes["period_to"].astype(str) == period_to)]
    by = municipalities.assign(period=municipalities["period"].astype(str)).set_index(
        ["period", "municipality"])
    names = rows["municipality"]
    a, b = by.loc[period_from].loc[names], by.loc[period_to].loc[names]
    n = len(rows)
    (ax,) = _axes(None, (8, max(5.0, min(14.0, 0.12 * max(n, 1) + 4))))
    p = rows["p_improved"].to_numpy(float)
    colour = np.where(p >= ci_prob, FAST, np.where(p <= 1 - ci_prob, SLOW, NEUTRAL))
    for i, name in enumerate(rows["municipality"]):
        y = (a.loc[name, "rank_mean"], b.loc[name, "rank_mean"])
        credible = colour[i] != NEUTRAL
        ax.plot((0, 1), y, color=colour[i], lw=1.2 if credible else 0.6,
                alpha=0.9 if credible else 0.35, zorder=3 if credible else 2)
        if n > MAX_LABELS and not credible:  # hundreds of intervals would hide each other
            continue
        for x, side in ((-0.015 - 0.01 * (i % 3), a), (1.015 + 0.01 * (i % 3), b)):
            ax.plot((x, x), (side.loc[name, "rank_lo"], side.loc[name, "rank_hi"]),
                    color=colour[i], lw=0.5, alpha=0.5 if credible else 0.2)
        if n <= MAX_LABELS or credible:
            ax.text(1.06, y[1], str(name), fontsize=6, va="center", color=colour[i])
    ax.invert_yaxis()
    ax.set_xlim(-0.15, 1.3)
    ax.set_xticks((0, 1), (period_from, period_to))
    ax.set_ylabel("mean rank (1 = fastest); ticks: " + _pct(ci_prob) + " rank intervals")
    ax.set_title(f"Rank changes {period_from} to {period_to}: green improved, red worsened "
                 f"with probability at least {ci_prob:.2f}", fontsize=9)
    return _figure(ax)


__all__ = ["plot_rank_changes"]
