r"""Effects in months of split episodes, cells by year and nested municipalities.

The effect in months (:mod:`munirank.posterior.effects`) is a mean over a municipality's
episodes of the restricted mean duration to the horizon, RMST(eta) with the effect and
without. Here the rows may be pieces of episodes split at 1 January, each with its own
year's municipal covariates, and the effects may be those of old municipalities nested in
the new ones that are ranked.

- A piece p of episode e has its own linear predictor :math:`\eta_p` (its year's
  :math:`z`). RMST describes a whole duration from time 0 to the horizon, which the pieces'
  conditions do not cover (the years before and after the episode are not in the data), so
  an episode's RMST is the mean of its pieces' RMSTs weighted by their share of its time at
  risk, :math:`\mathrm{RMST}_e = \sum_{p \in e} w_p\,\mathrm{RMST}(\eta_p)`,
  :math:`\sum_{p\in e} w_p = 1` (:func:`munirank.input.cells.pieces`); each piece's own
  conditions enter the observed and the expected durations alike. Where :math:`z` does not
  change over years every piece of an episode has the episode's :math:`\eta`, and this is
  the unsplit episode's RMST (tested). The mean is then over a municipality's unsplit
  episodes: observed_m = :math:`n_m^{-1}\sum_{e \in m}\mathrm{RMST}_e` with :math:`n_m` its
  episodes (``n_spells``), not its pieces.
- Nested: a new municipality n's episodes are all the episodes of its old municipalities,
  each with its old municipality's effect :math:`u^{old}_{o}`; observed_n - expected_n is
  the new municipality's effect in months over all its history. The old municipalities'
  own effects (over their own episodes) come beside them (dim ``old_municipality``).

The sums run over the model's segments (cells, or municipalities when only the pieces are
new) with the same compiled kernel as the default effects; segments are then added up per
municipality.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from munirank.input.cells import OLD
from munirank.input.episodes import as_codes
from munirank.model.build import time_scale
from munirank.model.cells import cell_units, unit_dim, unit_parents
from munirank.posterior.effects import _CHUNK, _gamma_table, _rmst_sums


def _segments(episodes: xr.Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Each row's segment, the segments' covariates and units, and the units' dim."""
    if "cell" in episodes.dims:
        return (episodes["episode_cell"].to_numpy(), episodes["z_cell"].to_numpy(),
                cell_units(episodes), unit_dim(episodes))
    n = episodes.sizes["municipality"]
    return as_codes(episodes), episodes["z"].to_numpy(), np.arange(n), "municipality"


def _by_unit(sums: np.ndarray, unit: np.ndarray, n: int) -> np.ndarray:
    """(draws, segments) sums added up per unit: (draws, n)."""
    out = np.zeros((sums.shape[0], n))
    for k in range(sums.shape[1]):  # segments: a few thousand at most
        out[:, unit[k]] += sums[:, k]
    return out


def _summed(posterior: xr.Dataset, episodes: xr.Dataset,
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """Per draw and unit: the sums of observed and expected RMST over its rows (weighted)."""
    scale = time_scale(episodes)
    horizon = float(episodes.attrs["horizon_months"])
    n_chain, n_draw = posterior.sizes["chain"], posterior.sizes["draw"]

    def flat(name: str, *dims: str) -> np.ndarray:
        values = posterior[name]
        for dim in dims:
            if dim in episodes.dims and not np.array_equal(values[dim].to_numpy(),
                                                           episodes[dim].to_numpy()):
                values = values.sel({dim: episodes[dim].to_numpy()})
        arr = values.transpose("chain", "draw", *dims).to_numpy()
        return arr.reshape(n_chain * n_draw, *arr.shape[2:])

    codes, z, unit, dim = _segments(episodes)
    n_seg = len(unit)
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(n_seg + 1))
    weight = (episodes["piece_weight"].to_numpy()[order] if "piece_weight" in episodes
              else None)
    alpha = flat("alpha")
    beta0, beta = flat("beta0"), flat("beta", "covariate")
    x_t = np.ascontiguousarray(episodes["x"].to_numpy()[order].T)
    muni = flat("gamma", "municipal_covariate") @ z.T
    u = np.ascontiguousarray(flat("u_old" if dim == OLD else "u", dim)[:, unit])
    observed = np.empty_like(u)
    expected = np.empty_like(u)
    logc = float(np.log(horizon / scale))
    chunk = int(max(2, min(_CHUNK, 20_000_000 // max(len(codes), 1))))
    for lo in range(0, len(alpha), chunk):
        sl = slice(lo, lo + chunk)
        value, slope = _gamma_table(1.0 / alpha[sl])
        base = beta0[sl, None] + beta[sl] @ x_t
        observed[sl], expected[sl] = _rmst_sums(alpha[sl], base, muni[sl], u[sl], starts, value,
                                                slope, logc, scale, weight)
    n_unit = episodes.sizes[dim]
    return _by_unit(observed, unit, n_unit), _by_unit(expected, unit, n_unit), u, dim


def _months(observed: np.ndarray, expected: np.ndarray, n_spells: np.ndarray,
            posterior: xr.Dataset, dim: str, coord: np.ndarray, suffix: str = "") -> xr.Dataset:
    shape = (posterior.sizes["chain"], posterior.sizes["draw"], -1)
    dims = ("chain", "draw", dim)
    out = xr.Dataset({f"observed_months{suffix}": (dims, (observed / n_spells).reshape(shape)),
                      f"expected_months{suffix}": (dims, (expected / n_spells).reshape(shape))},
                     coords={"chain": posterior["chain"], "draw": posterior["draw"], dim: coord})
    out[f"effect_months{suffix}"] = (out[f"observed_months{suffix}"]
                                     - out[f"expected_months{suffix}"])
    return out


def split_duration_effects(posterior: xr.Dataset, episodes: xr.Dataset) -> xr.Dataset:
    """Observed, expected and effect months per draw and municipality (module docstring).

    Parameters
    ----------
    posterior : xarray.Dataset
        Draws of ``alpha``, ``beta0``, ``beta``, ``gamma``, ``u`` (and with nesting
        ``u_old``), dims (chain, draw, ...).
    episodes : xarray.Dataset
        Episodes with pieces (``piece_weight``), cells or nesting
        (:mod:`munirank.input.cells`).

    Returns
    -------
    xarray.Dataset
        As :func:`munirank.posterior.effects.duration_effects`; with nesting also
        ``observed_months_old``, ``expected_months_old``, ``effect_months_old`` and
        ``log_hr_old`` (dim ``old_municipality``).
    """
    observed, expected, _, dim = _summed(posterior, episodes)
    municipalities = episodes["municipality"].to_numpy()
    if dim == OLD:
        parent = unit_parents(episodes)
        old = _months(observed, expected, episodes["n_spells_old"].to_numpy(), posterior, OLD,
                      episodes[OLD].to_numpy(), "_old")
        n_new = len(municipalities)
        observed, expected = (_by_unit(observed, parent, n_new),
                              _by_unit(expected, parent, n_new))
    out = _months(observed, expected, episodes["n_spells"].to_numpy(), posterior,
                  "municipality", municipalities)
    out["log_hr"] = posterior["u"]
    out["hazard_ratio"] = np.exp(posterior["u"])
    out["time_ratio"] = np.exp(-posterior["u"] / posterior["alpha"])
    if dim == OLD:
        out = out.merge(old)
        out["log_hr_old"] = posterior["u_old"]
    out.attrs.update(horizon_months=float(episodes.attrs["horizon_months"]), units="months")
    return out
