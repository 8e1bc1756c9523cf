"""Figures for analysts. They draw what the stats layer computed; they compute nothing.

Every function takes a summary table (municipalities.csv, comparison.csv, survival.csv) or a
stats result (:func:`munirank.posterior.ranks.rank_probabilities`), draws on ``ax`` if given (else
on a new figure made without pyplot, so nothing is left open) and returns the figure. Intervals are
labelled with their probability, ``ci_prob``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.figure import Figure

FAST, SLOW, NEUTRAL, SMALL = "#1b7837", "#b2182b", "#4d4d4d", "#e08214"
MAX_LABELS = 60  # above this many municipalities, only the extremes are named


def _axes(ax: Axes | None, figsize: tuple[float, float], ncols: int = 1) -> list[Axes]:
    if ax is not None:
        return [ax]
    fig = Figure(figsize=figsize, layout="constrained")
    return list(np.atleast_1d(fig.subplots(1, ncols)))


def _figure(ax: Axes) -> Figure:
    fig = ax.get_figure()
    assert isinstance(fig, Figure)
    return fig


def _pct(ci_prob: float) -> str:
    return f"{100 * ci_prob:g} %"


def _is_small(table: pd.DataFrame, small: int) -> np.ndarray:
    """Fewer than ``small`` spells, or a blanked (under the disclosure threshold) count."""
    n = pd.to_numeric(table["n_spells"], errors="coerce")
    return (n.isna() | (n < small)).to_numpy()


def _name_extremes(ax: Axes, names: np.ndarray, n: int = 5) -> None:
    fastest = ", ".join(str(m) for m in names[:n])
    slowest = ", ".join(str(m) for m in names[-n:][::-1])
    ax.text(0.99, 0.02, f"fastest: {fastest}\nslowest: {slowest}", transform=ax.transAxes,
            ha="right", va="bottom", fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.8, "edgecolor": "none"})


def plot_caterpillar(table: pd.DataFrame, *, ci_prob: float = 0.9, small: int = 80,
                     ax: Axes | None = None) -> Figure:
    """Effect in months with its interval, municipalities sorted by posterior mean.

    Parameters
    ----------
    table : pandas.DataFrame
        municipalities.csv (``effect_months_mean``, ``_lo``, ``_hi``, ``n_spells``).
    ci_prob : float
        Probability of the intervals in the table (for the label).
    small : int
        Municipalities with fewer spells (or blanked counts) are marked.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    (ax,) = _axes(ax, (11, 4.5))
    t = table.sort_values("effect_months_mean", kind="stable").reset_index(drop=True)
    x = np.arange(len(t))
    mean, lo, hi = (t[f"effect_months_{s}"].to_numpy() for s in ("mean", "lo", "hi"))
    is_small = _is_small(t, small)
    colour = np.where(is_small, SMALL, NEUTRAL)
    ax.vlines(x, lo, hi, colors=colour, linewidth=1.2, alpha=0.8)
    ax.scatter(x[~is_small], mean[~is_small], s=10, color=NEUTRAL, zorder=3,
               label=f"posterior mean, {_pct(ci_prob)} interval")
    ax.scatter(x[is_small], mean[is_small], s=14, marker="D", color=SMALL, zorder=3,
               label=f"fewer than {small} spells")
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_ylabel("effect (months; negative = faster than expected)")
    _label_municipalities(ax, x, t["municipality"].to_numpy())
    ax.legend(loc="upper left", fontsize=8)
    return _figure(ax)


def _label_municipalities(ax: Axes, x: np.ndarray, names: np.ndarray) -> None:
    if len(x) <= MAX_LABELS:
        ax.set_xticks(x, [str(n) for n in names], rotation=90, fontsize=7)
    else:
        ax.set_xticks([])
        ax.set_xlabel(f"{len(x)} municipalities, fastest to slowest")
        _name_extremes(ax, names)


def plot_rank_distribution(rank_probs: xr.DataArray, *, order: list[str] | None = None,
                           ax: Axes | None = None) -> Figure:
    """Heat map of P(rank = r) per municipality (rows) and rank (columns).

    Parameters
    ----------
    rank_probs : xarray.DataArray
        Output of :func:`munirank.posterior.ranks.rank_probabilities` (municipality, rank).
    order : list of str, optional
        Row order (e.g. by mean rank); default the array's order.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    n = rank_probs.sizes["municipality"]
    (ax,) = _axes(ax, (9, max(4.0, min(9.0, 0.16 * n))))
    probs = rank_probs.sel(municipality=order) if order is not None else rank_probs
    image = ax.imshow(probs.to_numpy(), aspect="auto", cmap="viridis", interpolation="nearest",
                      extent=(0.5, n + 0.5, n - 0.5, -0.5))
    names = probs["municipality"].to_numpy()
    if n <= MAX_LABELS:
        ax.set_yticks(np.arange(n), [str(m) for m in names], fontsize=7)
    else:
        ax.set_yticks([0, n - 1], [str(names[0]), str(names[-1])], fontsize=7)
    ax.set_xlabel("rank (1 = fastest)")
    ax.set_ylabel("municipality (sorted by mean rank)")
    _figure(ax).colorbar(image, ax=ax, label="posterior probability of the rank")
    return _figure(ax)


def plot_top_bottom(table: pd.DataFrame, *, top_k: int = 10, n: int = 15) -> Figure:
    """Bars of P(top k) for the ``n`` most likely and P(bottom k) for the ``n`` least likely.

    Parameters
    ----------
    table : pandas.DataFrame
        municipalities.csv with ``p_top{k}`` and ``p_bottom{k}``.
    top_k : int
        The k of the columns.
    n : int
        Bars per panel.

    Returns
    -------
    matplotlib.figure.Figure
    """
    axes = _axes(None, (11, 0.25 * n + 1.5), ncols=2)
    for ax, col, colour, title in ((axes[0], f"p_top{top_k}", FAST, f"among the {top_k} fastest"),
                                   (axes[1], f"p_bottom{top_k}", SLOW,
                                    f"among the {top_k} slowest")):
        best = table.nlargest(n, col).iloc[::-1]
        ax.barh(best["municipality"].astype(str), best[col], color=colour)
        ax.set_xlim(0, 1)
        ax.set_xlabel("posterior probability")
        ax.set_title(f"Probability of being {title}", fontsize=10)
        ax.tick_params(axis="y", labelsize=8)
    return _figure(axes[0])


def plot_shrinkage(comparison: pd.DataFrame, *, ax: Axes | None = None) -> Figure:
    """Frequentist vs Bayesian effect against the number of spells, joined by arrows.

    Parameters
    ----------
    comparison : pandas.DataFrame
        comparison.csv (``n_spells``, ``freq_effect_months``, ``bayes_effect_months_mean``).
        Rows with blanked counts or no frequentist estimate are left out.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    (ax,) = _axes(ax, (10, 5))
    c = comparison.assign(n=pd.to_numeric(comparison["n_spells"], errors="coerce"))
    c = c.dropna(subset=["n", "freq_effect_months", "bayes_effect_months_mean"])
    n, f, b = (c[k].to_numpy(float) for k in ("n", "freq_effect_months",
                                                 "bayes_effect_months_mean"))
    ax.scatter(n, f, s=12, color=SMALL, label="frequentist estimate", zorder=3)
    ax.scatter(n, b, s=12, color=NEUTRAL, label="Bayesian posterior mean", zorder=3)
    for xi, fi, bi in zip(n, f, b, strict=True):
        ax.annotate("", xy=(xi, bi), xytext=(xi, fi),
                    arrowprops={"arrowstyle": "->", "color": "grey", "lw": 0.6})
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_xlabel("number of spells (log scale)")
    ax.set_ylabel("effect (months)")
    ax.legend(fontsize=8, loc="upper right")
    return _figure(ax)


def plot_funnel(comparison: pd.DataFrame, *, ax: Axes | None = None) -> Figure:
    """Funnel plot: frequentist effect against its precision 1 / SE, with control limits.

    The limits are 0 +/- z * SE for two-sided 95 % and 99.8 % (what an effect that is pure
    noise around the national mean would stay inside).

    Parameters
    ----------
    comparison : pandas.DataFrame
        comparison.csv (``freq_effect_months``, ``freq_se``, ``in_cutoff``).
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    (ax,) = _axes(ax, (10, 5))
    c = comparison.dropna(subset=["freq_effect_months", "freq_se"])
    c = c[c["freq_se"] > 0]
    precision = 1 / c["freq_se"].to_numpy(float)
    inside = c["in_cutoff"].astype(bool).to_numpy()
    effect = c["freq_effect_months"].to_numpy(float)
    ax.scatter(precision[inside], effect[inside], s=12, color=NEUTRAL, label="ranked (cut-off)")
    ax.scatter(precision[~inside], effect[~inside], s=12, color=SMALL, marker="D",
               label="excluded by the cut-off")
    grid = np.linspace(max(precision.min(), 1e-3) * 0.9, precision.max() * 1.05, 200)
    for z, style, prob in ((1.96, "--", "95 %"), (3.09, ":", "99.8 %")):
        ax.plot(grid, z / grid, style, color="black", linewidth=0.8, label=f"{prob} limits")
        ax.plot(grid, -z / grid, style, color="black", linewidth=0.8)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xlabel("precision (1 / standard error, 1/months)")
    ax.set_ylabel("frequentist effect (months)")
    ax.legend(fontsize=8, loc="upper right")
    return _figure(ax)


def plot_survival(survival: pd.DataFrame, *, groups: list[str] | None = None,
                  ci_prob: float = 0.9) -> Figure:
    """Kaplan-Meier (delayed entry) against posterior predictive survival, one panel a group.

    Parameters
    ----------
    survival : pandas.DataFrame
        survival.csv (``group``, ``month``, ``km``, ``km_lo``, ``km_hi``, ``pred_mean``,
        ``pred_lo``, ``pred_hi``); blank Kaplan-Meier values are not drawn.
    groups : list of str, optional
        Groups to draw (default all, in table order).
    ci_prob : float
        Probability of the intervals (for the legend).

    Returns
    -------
    matplotlib.figure.Figure
    """
    groups = list(dict.fromkeys(survival["group"])) if groups is None else groups
    ncols = min(3, len(groups))
    nrows = -(-len(groups) // ncols)
    fig = Figure(figsize=(4 * ncols, 3.2 * nrows), layout="constrained")
    axes = np.atleast_1d(fig.subplots(nrows, ncols, sharey=True)).ravel()
    for ax, group in zip(axes, groups, strict=False):
        _draw_survival(ax, survival[survival["group"] == group], ci_prob)
        ax.set_title(str(group), fontsize=10)
    for ax in axes[len(groups):]:
        ax.set_visible(False)
    axes[0].legend(fontsize=7, loc="lower left")
    return fig


def _draw_survival(ax: Axes, g: pd.DataFrame, ci_prob: float) -> None:
    month = g["month"].to_numpy(float)
    ax.fill_between(month, g["pred_lo"], g["pred_hi"], color=NEUTRAL, alpha=0.25,
                    label=f"posterior predictive, {_pct(ci_prob)} interval")
    ax.plot(month, g["pred_mean"], color=NEUTRAL)
    ax.step(month, g["km"], where="post", color=FAST, label="Kaplan-Meier (delayed entry)")
    ax.fill_between(month, g["km_lo"], g["km_hi"], step="post", color=FAST, alpha=0.15,
                    label=f"Kaplan-Meier {_pct(ci_prob)} interval")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("months")
    ax.set_ylabel("share not yet reached")


def plot_rank_comparison(comparison: pd.DataFrame, *, ci_prob: float = 0.9,
                         ax: Axes | None = None) -> Figure:
    """Frequentist rank against the Bayesian rank interval, for the ranked municipalities.

    Parameters
    ----------
    comparison : pandas.DataFrame
        comparison.csv (``freq_rank``, ``bayes_rank_mean``, ``bayes_rank_lo``,
        ``bayes_rank_hi``, ``flag_*``).
    ci_prob : float
        Probability of the rank interval (for the label).
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.figure.Figure
    """
    (ax,) = _axes(ax, (10, 5))
    c = comparison.dropna(subset=["freq_rank"]).sort_values("freq_rank")
    x = c["freq_rank"].to_numpy(float)
    mean = c["bayes_rank_mean"].to_numpy(float)
    flagged = c.filter(like="flag_").astype(bool).any(axis=1).to_numpy()
    colour = np.where(flagged, SLOW, NEUTRAL)
    ax.vlines(x, c["bayes_rank_lo"], c["bayes_rank_hi"], colors=colour, linewidth=1)
    ax.scatter(x, mean, s=10, c=colour, zorder=3,
               label=f"Bayesian mean rank, {_pct(ci_prob)} interval")
    ax.scatter([], [], s=10, color=SLOW, label="flagged (see table)")
    top = float(np.nanmax(x))
    ax.plot([1, top], [1, top], color="grey", linewidth=0.6, label="same rank")
    ax.set_xlim(0, top + 1)
    ax.set_xlabel("frequentist rank (1 = fastest)")
    ax.set_ylabel("Bayesian rank (1 = fastest)")
    ax.legend(fontsize=8, loc="upper left")
    return _figure(ax)


def figure_to_png(fig: Figure, *, dpi: int = 96) -> bytes:
    """The figure as PNG bytes (for embedding)."""
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


__all__ = ["figure_to_png", "plot_caterpillar", "plot_funnel", "plot_rank_comparison",
           "plot_rank_distribution", "plot_shrinkage", "plot_survival", "plot_top_bottom"]
