r"""Kaplan-Meier with delayed entry and its exponential Greenwood interval, in numpy.

.. math::

    \hat S(t) = \prod_{t_j \le t} \Bigl(1 - \frac{d_j}{n_j}\Bigr), \qquad
    \widehat{\mathrm{var}}\,\log \hat S(t) = \sum_{t_j \le t} \frac{d_j}{n_j (n_j - d_j)}

with :math:`n_j` the episodes at risk just before :math:`t_j` (entered before it, not yet
left) and :math:`d_j` the events at :math:`t_j`; the interval is
:math:`\exp(-\exp(\log(-\log \hat S) \pm z\, \hat\sigma / \log \hat S))`.

The arithmetic of lifelines 0.30 (``KaplanMeierFitter.fit(..., entry=)``: its event table,
the cumulative sum of :math:`\log(n_j - d_j) - \log n_j` that skips undefined terms, and
``_bounds``), written here because lifelines costs a fit 1.05 s of import and 0.8 s for the 73
curves of dk-1999-2005, against 0.12 s for these (equal to lifelines within 1e-12 on 2,000
random registers with ties and delayed entry, tested). lifelines stays the reference in the
tests and the frequentist benchmark's estimator.
"""

from __future__ import annotations

import numpy as np
from scipy.special import erfcinv


class TooFewEarlyEntries(ValueError):
    """lifelines' ``StatError``: the risk set empties in the first half of the times."""


def km_curve(entry: np.ndarray, exit: np.ndarray, event: np.ndarray, *,
             ci_prob: float = 0.9) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The curve at every distinct entry or exit time, with its pointwise interval.

    Parameters
    ----------
    entry, exit, event : numpy.ndarray
        Entry and exit times and the event indicator of each episode.
    ci_prob : float
        Probability of the interval.

    Returns
    -------
    tuple of numpy.ndarray
        Times, survival, lower and upper bound (lifelines' ``survival_function_`` and
        ``confidence_interval_``).

    Raises
    ------
    TooFewEarlyEntries
        Where lifelines raises ``StatError``.
    """
    exit = np.asarray(exit, float)
    times, inverse = np.unique(np.concatenate([exit, np.asarray(entry, float)]),
                               return_inverse=True)
    n, k = len(exit), len(times)
    removed = np.bincount(inverse[:n], minlength=k)
    deaths = np.bincount(inverse[:n], weights=np.asarray(event).astype(bool), minlength=k)
    entered = np.bincount(inverse[n:], minlength=k)
    at_risk = np.cumsum(entered) - np.concatenate([[0], np.cumsum(removed)[:-1]])
    net = np.cumsum(entered - removed)
    if k // 2 and net[: k // 2].min() == 0:
        raise TooFewEarlyEntries(
            "too few early entries: the risk set is empty after "
            f"{times[: k // 2][np.argmin(net[: k // 2])]:g}")
    entered_after_first = entered.copy()
    entered_after_first[0] = 0
    population = (at_risk - entered_after_first).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_step = np.log(population - deaths) - np.log(population)
        var_step = deaths / (population * (population - deaths))
    var_step[np.isinf(var_step)] = 0.0
    survival = np.exp(_forward_filled(_cumsum_skipping_nan(log_step)))
    var = _forward_filled(_cumsum_skipping_nan(var_step))
    z = -np.sqrt(2) * erfcinv(2 * (1 - (1 - ci_prob) / 2))  # the normal quantile
    with np.errstate(invalid="ignore", divide="ignore"):
        log_s = np.log(survival)
        lo = np.exp(-np.exp(np.log(-log_s) - z * np.sqrt(var) / log_s))
        hi = np.exp(-np.exp(np.log(-log_s) + z * np.sqrt(var) / log_s))
    return times, survival, np.nan_to_num(lo, nan=1.0), np.nan_to_num(hi, nan=1.0)


def _cumsum_skipping_nan(x: np.ndarray) -> np.ndarray:
    """As pandas' ``Series.cumsum()``: a NaN stays NaN and later sums skip it."""
    missing = np.isnan(x)
    out = np.cumsum(np.where(missing, 0.0, x))
    out[missing] = np.nan
    return out


def _forward_filled(x: np.ndarray) -> np.ndarray:
    missing = np.isnan(x)
    if not missing.any():
        return x
    last = np.where(~missing, np.arange(len(x)), 0)
    np.maximum.accumulate(last, out=last)
    out = x[last]
    out[missing & (np.cumsum(~missing) == 0)] = np.nan
    return out
