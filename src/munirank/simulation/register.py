r"""Simulated registers with known truth.

A register is simulated person by person on a time axis of months since residence permit (or
programme start), with administrative right censoring at the end of follow-up and movers: a
mover's first episode is censored at the move, and the rest of the spell is a delayed-entry
episode in the new municipality, drawn from the conditional survival there. Person i in
municipality m has the linear predictor :math:`\eta_i = x_i'\beta + z_m'\gamma + u_m` and

.. math::

    S_i(t) = \Psi\big(e^{\eta_i} G_c(t)\big), \qquad
    \Psi(x) = e^{-x} \ (\texttt{weibull}, \text{PH}) \quad\text{or}\quad
    \Psi(x) = 1 / (1 + x) \ (\texttt{loglogistic}, \text{proportional odds})

- ``weibull``: :math:`G(t) = \lambda t^\alpha`, the model munirank fits; ``u_m`` is a log
  hazard ratio.
- ``loglogistic``: :math:`G(t) = (t / t_{50})^\kappa` with :math:`t_{50}` the Weibull median,
  a log-logistic baseline; ``u_m`` multiplies the odds of having reached the outcome by any
  time (a log odds ratio: close to a log hazard ratio while the outcome is rare, but the
  hazards are not proportional, so the fitted Weibull PH model is misspecified).
- Calibrated presets (``dk-1999-2005``): :math:`G_c` depends on the permit year c and is
  piecewise linear between yearly knots (a piecewise-constant hazard per year since permit).
  The knots are chosen (penalised least squares on the log yearly increments, milliseconds)
  so that the expected share of persons of cohort c with the outcome by the end of calendar
  year c + k, :math:`1 - \mathrm{mean}_i\,\Psi(e^{\eta_i} G_c(w_{ik}))` with :math:`w_{ik}`
  person i's months from permit to the end of that year (or of follow-up), matches table 3
  of the publication (see :mod:`munirank.simulation.calibration`). Years a cohort was not followed
  are extrapolated with the year-on-year shape of the 1999 cohort. The simulator is then richer than
  the fitted Weibull model (a permit-year-specific piecewise baseline), which the fit approximates
  with ``permit_year`` as a categorical covariate. Individual covariates, the municipal covariates,
  the composition of municipalities (``composition_sd``) and ``effect_sd`` are sized so that
  covariates explain about 0.72 of the between-municipality variance of mean durations and the true
  effects span 10-20 months over the 72 ranked municipalities; the male coefficient reproduces table
  2; the permit-year mix and the movers reproduce table 1.
- First-episode event times use uniforms stratified within permit year
  (:func:`stratified_uniforms`): each draw is uniform, but the cohort shares of table 3 carry
  far less sampling noise, so every seed reproduces the tables.

``scale`` multiplies every municipality's spell count (and the total); the set of
municipalities stays as published (271 for dk, 356 for no), so large scales test the number
of episodes, not of municipalities. A million dk spells (scale 42.44) take ~5 s and <1 GB.

Episode counts per municipality are exact: each mover's destination loses one randomly chosen
non-moving person, so that the published spell counts of the AKF municipalities hold.
An event is labelled (``outcome``) as education with a sex-specific probability, else as the
preset's main outcome (self-support, work); censored episodes are labelled ``none``.

Truth (``truth.csv``) uses the fit's own definition (:mod:`munirank.posterior.effects`) under the
true survival function: observed_m = mean over m's episodes of
:math:`\mathrm{RMST}_{48} = \int_0^{48} S_i(t)\,dt` with ``u_m``, expected_m = the same with
``u_m = 0`` (municipal covariates in both), effect_months_m = observed_m - expected_m, rank 1 =
fastest. For piecewise-linear G the integral is closed-form per segment.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tomli_w

from munirank.errors import InputError
from munirank.output.destinations import atomic_folder
from munirank.posterior.effects import rmst_weibull
from munirank.simulation import calibration
from munirank.simulation.presets import (
    OUTCOME_NAMES,
    Preset,
    covariate_truth,
    draw_effects,
    individual_columns,
    linear_predictor,
    municipal_eta,
    municipal_table,
    municipality_counts,
    person_table,
    preset,
    seed_facts,
)
from munirank.simulation.register_form import write_register_form

__all__ = ["Baseline", "Preset", "preset", "simulate_register", "spec_for", "write_register"]

_CHUNK = 100_000  # episodes per block when integrating piecewise survival curves


@dataclass(frozen=True)
class Baseline:
    """The baseline function G_c(t) (months) and the link Psi of the true survival curve.

    With ``alpha`` set, G(t) = ``rate`` * t^alpha exactly (one cohort); otherwise G_c is
    piecewise linear through ``values[c]`` at ``knots`` and extended linearly beyond.
    """

    link: str                      # "ph" (weibull) or "po" (loglogistic)
    knots: np.ndarray | None = None
    values: np.ndarray | None = None
    rate: float = 1.0
    alpha: float | None = None

    def cumulative(self, t: np.ndarray, cohort: np.ndarray) -> np.ndarray:
        """G_c(t) per person."""
        if self.alpha is not None:
            return self.rate * t**self.alpha
        out = np.empty_like(t)
        for c in np.unique(cohort):
            sel = cohort == c
            out[sel] = np.interp(t[sel], self.knots, self.values[c])
        return out

    def inverse(self, g: np.ndarray, cohort: np.ndarray) -> np.ndarray:
        """The time at which G_c reaches ``g``."""
        if self.alpha is not None:
            return (g / self.rate) ** (1.0 / self.alpha)
        out = np.empty_like(g)
        for c in np.unique(cohort):
            sel = cohort == c
            out[sel] = np.interp(g[sel], self.values[c], self.knots)
        return out

    def event_time(self, r: np.ndarray, start: np.ndarray, cohort: np.ndarray,
                   uniform: np.ndarray) -> np.ndarray:
        """T > start with S(T) / S(start) = ``uniform``, for S(t) = Psi(r G_c(t))."""
        g_start = self.cumulative(start, cohort)
        if self.link == "ph":
            g = g_start - np.log(uniform) / r
        else:
            g = ((1.0 + r * g_start) / uniform - 1.0) / r
        return self.inverse(g, cohort)

    def rmst(self, eta: np.ndarray, cohort: np.ndarray, horizon: float) -> np.ndarray:
        """Restricted mean survival time to ``horizon`` months of S = Psi(e^eta G_c)."""
        if self.alpha is not None and self.link == "ph":
            return rmst_weibull(eta + np.log(self.rate), self.alpha, horizon)
        out = np.empty(len(eta))
        for lo in range(0, len(eta), _CHUNK):
            sl = slice(lo, lo + _CHUNK)
            out[sl] = self._rmst_block(np.exp(eta[sl]), cohort[sl], horizon)
        return out

    def _rmst_block(self, r: np.ndarray, cohort: np.ndarray, horizon: float) -> np.ndarray:
        knots = self.knots[self.knots < horizon]
        knots = np.append(knots, horizon)
        length = np.diff(knots)
        g = np.stack([np.interp(knots, self.knots, v) for v in self.values])[cohort]
        rg, slope = r[:, None] * g[:, :-1], r[:, None] * np.diff(g, axis=1) / length
        tiny = slope * length < 1e-10
        safe = np.where(tiny, 1.0, slope)
        if self.link == "ph":
            seg = np.exp(-rg) * np.where(tiny, length, -np.expm1(-safe * length) / safe)
        else:
            seg = np.where(tiny, length / (1 + rg), np.log1p(safe * length / (1 + rg)) / safe)
        return seg.sum(axis=1)


def _survival(link: str, x: np.ndarray) -> np.ndarray:
    return np.exp(-x) if link == "ph" else 1.0 / (1.0 + x)


def weibull_median(p: Preset) -> float:
    """Median months at reference covariates of the preset's Weibull baseline."""
    return float((np.log(2.0) / p.base_rate_per_month) ** (1.0 / p.alpha))


def make_baseline(p: Preset) -> Baseline:
    """The uncalibrated baseline of a preset (``weibull`` or ``loglogistic``)."""
    if p.baseline == "weibull":
        return Baseline("ph", rate=p.base_rate_per_month, alpha=p.alpha)
    if p.baseline != "loglogistic":
        raise InputError(f"unknown baseline {p.baseline!r}; known: weibull, loglogistic",
                         option="--baseline")
    knots = np.concatenate([np.linspace(0.0, 120.0, 481), [240.0, 480.0, 1e5]])
    values = (knots / weibull_median(p)) ** p.loglogistic_shape
    return Baseline("po", knots=knots, values=values[None, :])


def simulate_register(name: str, seed: int, *, effects: np.ndarray | None = None,
                      municipal: pd.DataFrame | None = None,
                      **overrides: float | str) -> dict[str, pd.DataFrame]:
    """Simulate a register from a preset.

    Parameters
    ----------
    name : str
        Preset name: ``tiny``, ``dk-1999-2005`` or ``no-2012-2018``.
    seed : int
        Seed of the local random generator.
    effects, municipal : optional
        The true effects u_m and the municipal table (indexed by municipality) to use instead
        of drawing them (they are drawn all the same, so the rest of the register is the
        same as without them): a register of one period of :mod:`.periods`.
    **overrides
        Preset fields to change (``effect_sd``, ``effect_dist``, ``baseline``, ``scale``).

    Returns
    -------
    dict of pandas.DataFrame
        ``spells`` (one row per episode), ``municipal`` (one row per municipality), ``truth``
        (per municipality) and ``truth_covariates`` (per covariate).

    Examples
    --------
    >>> tables = simulate_register("tiny", seed=1)
    >>> int(tables["spells"].groupby("municipality").size()["M01"])
    420
    """
    p = replace(preset(name), **overrides)
    if p.panel_years:
        raise InputError(f"preset {name!r} is simulated in calendar time: write it with "
                         "munirank simulate (simulation.panel)", column="--preset")
    rng = np.random.default_rng(seed)
    counts = municipality_counts(p, rng)
    names = counts.index.tolist()
    drawn = municipal_table(names, counts.to_numpy(), p, rng)
    municipal = drawn if municipal is None else municipal.loc[names]
    mu_z = municipal_eta(municipal, p)
    u = draw_effects(p, len(names), rng)
    if effects is not None:
        u = np.asarray(effects, float)
    origin = np.repeat(np.arange(len(names)), counts.to_numpy())
    persons, follow = person_table(p, rng.normal(size=len(names))[origin], rng)
    eta_x = linear_predictor(persons, p.individual)
    cohort, base = _baseline_for(p, persons, follow, eta_x + (mu_z + u)[origin], rng)
    episodes = _episodes(origin, eta_x, mu_z + u, follow, cohort, base, p, rng)
    spells = _spells_table(episodes, persons, names, p, rng)
    truth = _truth(episodes, eta_x, cohort, names, u, mu_z, base, p)
    return {"spells": spells, "municipal": municipal.reset_index(), "truth": truth,
            "truth_covariates": covariate_truth(municipal, p)}


def _baseline_for(p: Preset, persons: pd.DataFrame, follow: np.ndarray,
                  eta: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, Baseline]:
    if not p.calibrated:
        return np.zeros(len(eta), np.intp), make_baseline(p)
    if p.baseline not in ("weibull", "loglogistic"):
        raise InputError(f"unknown baseline {p.baseline!r}; known: weibull, loglogistic",
                         option="--baseline")
    table3 = seed_facts()["dk_2006"]["table3_cumulative_pct_by_permit_year"]
    year = persons["permit_year"].to_numpy()
    cohort = (year - int(min(table3))).astype(np.intp)
    sub = rng.permutation(len(eta))[:120_000]  # the root finding needs no more persons
    window = calibration.cell_windows(follow[sub], year[sub], max(len(v) for v in table3.values()))
    link = "ph" if p.baseline == "weibull" else "po"
    knots, values = calibration.calibrated_baseline(link, np.exp(eta[sub]), cohort[sub], window,
                                                    table3)
    return cohort, Baseline(link, knots=knots, values=values)


def stratified_uniforms(groups: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uniform(0, 1) draws stratified within each group (one per 1/n-th of the interval).

    Each draw is uniform; within a group they cover (0, 1) evenly, which removes most of the
    sampling noise of group-level shares (table 3 by permit year) without changing the model.
    """
    n = len(groups)
    order = np.lexsort((rng.random(n), groups))
    sizes = np.bincount(groups)
    rank = np.empty(n)
    rank[order] = np.arange(n) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    return (rank + 1.0 - rng.random(n)) / sizes[groups]


def _replace_stayers(origin: np.ndarray, movers: np.ndarray, dest: np.ndarray,
                     n_munis: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Pick one random non-mover of the destination per arrival (vectorised).

    Returns the persons removed and which movers found a stayer to replace.
    """
    stayer = np.ones(len(origin), bool)
    stayer[movers] = False
    s_idx = np.flatnonzero(stayer)
    s_sorted = s_idx[np.lexsort((rng.random(len(s_idx)), origin[s_idx]))]
    first = np.searchsorted(origin[s_sorted], np.arange(n_munis))
    available = np.bincount(origin[s_sorted], minlength=n_munis)
    order = np.argsort(dest, kind="stable")
    d_sorted = dest[order]
    rank = np.arange(len(dest)) - np.searchsorted(d_sorted, np.arange(n_munis))[d_sorted]
    ok_sorted = rank < available[d_sorted]
    removed = s_sorted[first[d_sorted[ok_sorted]] + rank[ok_sorted]]
    ok = np.empty(len(dest), bool)
    ok[order] = ok_sorted
    return removed, ok


def moves(origin: np.ndarray, t_first: np.ndarray, follow: np.ndarray, n_munis: int, p: Preset,
          rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """Who moves, when and where (a register's second episodes).

    ``t_first``: each person's event time in the municipality of origin. Returns the move
    times of all persons, the movers, their destinations, the persons kept (stayers who gave
    their place to a mover are dropped, :func:`_replace_stayers`) and whether each moved.
    """
    n = len(origin)
    move_at = rng.uniform(1.0, np.maximum(follow, 1.0))
    at_risk = (t_first > move_at) & (move_at < follow)
    # movers are a share of the spells; only persons still at risk at the move can move
    q = min(1.0, p.mover_share * n / max(at_risk.sum(), 1))
    movers = np.flatnonzero(at_risk & (rng.random(n) < q))
    counts = np.bincount(origin, minlength=n_munis)
    dest = rng.choice(n_munis, size=len(movers), p=counts / counts.sum())
    same = dest == origin[movers]
    dest[same] = (dest[same] + 1 + rng.integers(0, n_munis - 1, same.sum())) % n_munis
    removed, ok = _replace_stayers(origin, movers, dest, n_munis, rng)
    movers, dest = movers[ok], dest[ok]
    keep = np.ones(n, bool)
    keep[removed] = False
    moved = np.zeros(n, bool)
    moved[movers] = True
    return move_at, movers, dest, keep, moved


def _episodes(origin: np.ndarray, eta_x: np.ndarray, muni_eta: np.ndarray, follow: np.ndarray,
              cohort: np.ndarray, base: Baseline, p: Preset,
              rng: np.random.Generator) -> pd.DataFrame:
    n = len(origin)
    t_origin = base.event_time(np.exp(eta_x + muni_eta[origin]), np.zeros(n), cohort,
                               stratified_uniforms(cohort, rng))
    move_at, movers, dest, keep, moved = moves(origin, t_origin, follow, len(muni_eta), p, rng)
    t_dest = base.event_time(np.exp(eta_x[movers] + muni_eta[dest]), move_at[movers],
                             cohort[movers], 1.0 - rng.random(len(movers)))
    first = pd.DataFrame({"person": np.arange(n), "muni": origin, "start": 0.0,
                          "stop": np.where(moved, move_at, np.minimum(t_origin, follow)),
                          "event": (~moved & (t_origin <= follow)).astype(int)})
    second = pd.DataFrame({"person": movers, "muni": dest, "start": move_at[movers],
                           "stop": np.minimum(t_dest, follow[movers]),
                           "event": (t_dest <= follow[movers]).astype(int)})
    out = pd.concat([first[keep], second], ignore_index=True)
    return out.sort_values(["person", "start"], kind="stable").reset_index(drop=True)


def _outcome_labels(ep: pd.DataFrame, persons: pd.DataFrame, p: Preset,
                    rng: np.random.Generator) -> np.ndarray:
    person = ep["person"].to_numpy()
    if "male" in persons:
        male = persons["male"].to_numpy()[person]
    elif "female" in persons:
        male = 1 - persons["female"].to_numpy()[person]
    else:
        male = np.zeros(len(ep), int)
    education = rng.random(len(ep)) < np.asarray(p.education_share)[male]
    labels = np.where(education, p.outcome_labels[1], p.outcome_labels[0]).astype(object)
    return np.where(ep["event"].to_numpy() == 1, labels, "none")


def _spells_table(ep: pd.DataFrame, persons: pd.DataFrame, names: list[str], p: Preset,
                  rng: np.random.Generator) -> pd.DataFrame:
    cols = individual_columns(p)[0] + [c for c in p.register_columns if c in persons]
    per_month = {"months": 1.0, "weeks": 52.0 / 12.0}[p.time_unit]
    start, stop = ep["start"].to_numpy() * per_month, ep["stop"].to_numpy() * per_month
    if p.time_unit == "weeks":  # registers count whole weeks; an episode lasts at least one
        start = np.round(start)
        stop = np.maximum(np.round(stop), start + 1)
    else:
        start = start.round(3)
        stop = np.maximum(stop.round(3), start + 0.001)
    out = pd.DataFrame({"person_id": ep["person"].to_numpy() + 1,
                        "municipality": np.asarray(names, dtype=object)[ep["muni"].to_numpy()],
                        "start": start, "stop": stop, "event": ep["event"].to_numpy(),
                        "outcome": _outcome_labels(ep, persons, p, rng)})
    return pd.concat([out, persons[cols].iloc[ep["person"].to_numpy()].reset_index(drop=True)],
                     axis=1)


def _truth(ep: pd.DataFrame, eta_x: np.ndarray, cohort: np.ndarray, names: list[str],
           u: np.ndarray, mu_z: np.ndarray, base: Baseline, p: Preset) -> pd.DataFrame:
    person, codes = ep["person"].to_numpy(), ep["muni"].to_numpy()
    eta0 = eta_x[person] + mu_z[codes]
    observed = base.rmst(eta0 + u[codes], cohort[person], p.horizon_months)
    expected = base.rmst(eta0, cohort[person], p.horizon_months)
    n = np.bincount(codes, minlength=len(names))
    obs_m = np.bincount(codes, weights=observed, minlength=len(names)) / n
    exp_m = np.bincount(codes, weights=expected, minlength=len(names)) / n
    effect = obs_m - exp_m
    rank = pd.Series(effect).rank(method="first").astype(int).to_numpy()
    k = p.top_k
    return pd.DataFrame({
        "municipality": names, "n_spells": n, "true_log_hr": u,
        "true_municipal_log_hr": mu_z,
        "true_effect_months": effect, "true_observed_months": obs_m,
        "true_expected_months": exp_m, "true_rank": rank,
        f"true_top{k}": rank <= k, f"true_bottom{k}": rank > len(names) - k,
    })


def spec_for(p: Preset, out_files: dict[str, str]) -> dict:
    """The spec.toml content that fits a simulated register."""
    individual, categorical = individual_columns(p)
    spec = {
        "data": {"group": "municipality", "time": "stop", "event": "event", "entry": "start",
                 "time_unit": p.time_unit, "municipal_table": out_files["municipal"]},
        "covariates": {"individual": individual, "categorical": categorical,
                       "municipal": list(p.municipal)},
        "outcome": {"horizon_months": p.horizon_months},
        "ranking": {"top_k": p.top_k},
    }
    if p.named_counts and p.n_small and p.name.startswith("dk"):
        spec["ranking"]["subset"] = [k for k, _ in p.named_counts]
    return spec


def write_register(name: str, seed: int, out: str | Path, *, register_form: bool = False,
                   **overrides: float | str) -> Path:
    """Simulate and write a register to ``out``.

    Files: spells.csv, municipal.csv, truth.csv and spec.toml (the contract of DESIGN.md;
    the true covariate effects are in ``simulate_register(...)["truth_covariates"]``); with
    ``register_form``, also persons.csv, residence.csv and crosswalk.csv, and a
    ``[registers]`` section in spec.toml that ``munirank episodes`` reads
    (:mod:`munirank.simulation.register_form`).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if name in OUTCOME_NAMES:  # competing outcomes (simulation.outcomes)
        from munirank.simulation.outcomes import write_outcome_register

        return write_outcome_register(name, seed, out, register_form=register_form,
                                      **overrides)
    if preset(name).panel_years:
        from munirank.simulation.panel import write_panel

        return write_panel(name, seed, out, register_form=register_form, **overrides)
    if preset(name).periods:  # repeated measurements (simulation.periods)
        from munirank.simulation.periods import write_periods

        return write_periods(name, seed, out, register_form=register_form, **overrides)
    tables = simulate_register(name, seed, **overrides)
    files = {"spells": "spells.csv", "municipal": "municipal.csv", "truth": "truth.csv"}
    for key, fname in files.items():
        tables[key].to_csv(out / fname, index=False)
    p = replace(preset(name), **overrides)
    spec = spec_for(p, files)
    if register_form:
        extra = write_register_form(tables["spells"], tables["municipal"]["municipality"].tolist(),
                                    time_unit=p.time_unit, seed=seed, out=out)
        spec["data"] |= extra["data"]
        spec["registers"] = extra["registers"]
    (out / "spec.toml").write_text(tomli_w.dumps(spec))
    return out


def simulate(preset: str, *, seed: int = 1, out: str | Path, overwrite: bool = False,
             register_form: bool = False, **options: Any) -> Path:
    """Simulate a register with known truth (``munirank simulate``).

    Parameters
    ----------
    preset : str
        ``tiny`` or ``dk-1999-2005``.
    seed : int
        Random seed.
    out : str or Path
        Folder for spells.csv, municipal.csv, truth.csv and spec.toml (see
        :mod:`munirank.output.destinations` for what may be replaced).
    overwrite : bool
        Write into a folder that holds files munirank did not write (they are kept).
    register_form : bool
        Also write the register form: persons.csv, residence.csv (dates) and a simulated
        crosswalk.csv, with a spec that ``munirank episodes`` reads.
    **options
        Preset fields to override, e.g. ``effect_sd=0.2``.

    Returns
    -------
    Path
        The output folder.
    """
    options = {k: v for k, v in options.items() if v is not None}
    with atomic_folder(out, command="simulate", overwrite=overwrite) as tmp:
        write_register(preset, seed, tmp, register_form=register_form, **options)
    return Path(out)
