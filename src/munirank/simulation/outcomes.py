r"""Simulated registers with competing outcomes and known truth (dk-outcomes, tiny-outcomes).

Person i in municipality m has one Weibull hazard per outcome k, the model munirank fits
with ``[data] outcome`` (:mod:`munirank.model.outcomes`):

.. math::

    \Lambda_{ik}(t) = r_k\, e^{x_i^\top\beta_k + z_m^\top\gamma_k + u_{mk}}\, t^{\alpha_k}
    \quad (t \text{ in months}), \qquad u_m \sim N(0, \Sigma),

:math:`\Sigma` with SDs ``effect_sd`` and correlation ``rho``. Each outcome's latent time is
drawn by inversion, :math:`T_k = (s^{\alpha_k} + E_k / (r_k e^{\eta_{ik}}))^{1/\alpha_k}` with
:math:`E_k \sim \mathrm{Exp}(1)` from entry s; the episode ends at the first, with that
outcome, or is censored at the end of follow-up or at a move (movers as in
:mod:`munirank.simulation.register`: a delayed-entry episode in the new municipality, drawn
anew from the move, and one non-mover fewer there so that spell counts stay as published).

``dk-outcomes``: the persons, municipal covariates and spell counts of ``dk-1999-2005``
(23,563 spells, 271 municipalities, weeks) and Weibull baselines whose rates :math:`r_k` are
calibrated to each simulated register (as the dk preset's baseline is) so that it has the
split of AKF 2006 table 1: 31.8 % of spells end in self-support and 2.8 % in education
(:func:`_calibrated_shift`; within 0.3 percentage points for every seed tried). Self-support
has the dk preset's covariate effects; education is faster for the young and for women.

The truth uses the fit's own definitions (:mod:`munirank.posterior.outcomes`, the same
quadrature): per outcome the effect in months on the time free of it, per municipality over
its episodes; the combined outcome's effect is their sum. ``truth.csv`` holds the combined
outcome (the columns of the single-outcome truth), ``truth_outcomes.csv`` one row per
municipality and outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import tomli_w

from munirank.errors import InputError
from munirank.posterior.outcomes import _incidence_sums, node_terms
from munirank.simulation.presets import (
    DK_INDIVIDUAL,
    DK_MUNICIPAL,
    OUTCOME_NAMES,
    Preset,
    individual_columns,
    linear_predictor,
    municipal_eta,
    municipal_table,
    municipality_counts,
    person_table,
    preset,
)
from munirank.simulation.register import moves, spec_for


@dataclass(frozen=True)
class Cause:
    """One outcome's true hazard: label, Weibull shape and rate, covariate effects."""

    label: str
    alpha: float
    rate: float  # per month^alpha at the reference person
    effect_sd: float
    individual: dict[str, float] = field(default_factory=dict)
    municipal: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class OutcomePreset:
    """A preset of persons and municipalities (``base``) with competing outcomes."""

    base: str
    causes: tuple[Cause, ...]
    rho: float = 0.3  # correlation of the municipality effects between the outcomes
    overrides: dict[str, object] = field(default_factory=dict)
    shares: tuple[float, ...] = ()  # target shares of spells per outcome (calibrated), or ()


EDUCATION_INDIVIDUAL = {"male": -0.15, "age": -0.07, "children": -0.1, "partner[danish]": 0.3,
                        "language_track[3]": 0.5, "language_track[1]": -0.4}
EDUCATION_MUNICIPAL = {"unemployment": 0.1, "skilled_jobs_share": 0.1}

PRESETS = {
    "tiny-outcomes": OutcomePreset(
        base="tiny", rho=0.4, overrides={"scale": 2.0},
        causes=(Cause("job", 1.1, 0.016, 0.4, {"male": 0.4, "age": -0.03},
                      {"unemployment": -0.2}),
                Cause("education", 0.9, 0.012, 0.4, {"male": -0.2, "age": -0.06},
                      {"unemployment": 0.1}))),
    "dk-outcomes": OutcomePreset(
        base="dk-1999-2005", rho=0.3, shares=(0.318, 0.028),
        causes=(Cause("self_support", 1.1, 0.00397, 0.4, DK_INDIVIDUAL, DK_MUNICIPAL),
                Cause("education", 0.9, 0.000815, 0.4, EDUCATION_INDIVIDUAL,
                      EDUCATION_MUNICIPAL))),
}
NAMES = OUTCOME_NAMES
"""The presets with competing outcomes."""
TABLE1_SHARES = {"self_support": 0.318, "education": 0.028}
"""AKF 2006 table 1: shares of spells ending in each outcome (bundled seed_facts.json)."""


def _base_preset(op: OutcomePreset, overrides: dict[str, object]) -> Preset:
    p = replace(preset(op.base), **{**op.overrides, **overrides})
    individual = {k: v for c in op.causes for k, v in c.individual.items()}
    municipal = {k: 0.0 for c in op.causes for k in c.municipal}
    return replace(p, individual=individual, municipal=municipal)


def _effects(op: OutcomePreset, n: int, rng: np.random.Generator) -> np.ndarray:
    sd = np.array([c.effect_sd for c in op.causes])
    corr = np.full((len(sd), len(sd)), op.rho)
    np.fill_diagonal(corr, 1.0)
    return rng.normal(size=(n, len(sd))) @ np.linalg.cholesky(corr * np.outer(sd, sd)).T


def _latent(log_rate: np.ndarray, alpha: np.ndarray, start: np.ndarray,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """First of the outcomes' latent times from ``start`` and which outcome, per person."""
    e = rng.exponential(size=log_rate.shape)
    t = (start[:, None] ** alpha + e * np.exp(-log_rate)) ** (1.0 / alpha)
    return t.min(axis=1), t.argmin(axis=1)


def simulate_outcome_register(name: str, seed: int, **overrides: object) -> dict[str, pd.DataFrame]:
    """Simulate a register with competing outcomes (module docstring).

    Returns
    -------
    dict of pandas.DataFrame
        ``spells`` (with an ``outcome`` column, blank when censored), ``municipal``,
        ``truth`` (combined outcome) and ``truth_outcomes`` (per municipality and outcome).
    """
    op = PRESETS[name]
    p = _base_preset(op, overrides)
    rng = np.random.default_rng(seed)
    counts = municipality_counts(p, rng)
    names = counts.index.tolist()
    municipal = municipal_table(names, counts.to_numpy(), p, rng)
    mu_z = np.stack([municipal_eta(municipal, replace(p, municipal=c.municipal))
                     for c in op.causes], axis=1)
    u = _effects(op, len(names), rng)
    origin = np.repeat(np.arange(len(names)), counts.to_numpy())
    persons, follow = person_table(p, rng.normal(size=len(names))[origin], rng)
    eta_x = np.stack([linear_predictor(persons, c.individual) + np.log(c.rate)
                      for c in op.causes], axis=1)
    alpha = np.array([c.alpha for c in op.causes])
    eta_x = eta_x + _calibrated_shift(op, origin, eta_x, mu_z + u, alpha, follow, p, rng)
    episodes = _episodes(origin, eta_x, mu_z + u, alpha, follow, p, rng)
    labels = [c.label for c in op.causes]
    spells = _spells_table(episodes, persons, names, labels, p)
    truth, truth_outcomes = _truth(episodes, eta_x, mu_z, u, alpha, names, labels, p)
    return {"spells": spells, "municipal": municipal.reset_index(), "truth": truth,
            "truth_outcomes": truth_outcomes}


CALIBRATION_ROUNDS = 8


def _calibrated_shift(op: OutcomePreset, origin: np.ndarray, eta_x: np.ndarray,
                      muni_eta: np.ndarray, alpha: np.ndarray, follow: np.ndarray, p: Preset,
                      rng: np.random.Generator) -> np.ndarray:
    """Log-rate shifts per outcome that give this register the preset's shares of spells.

    As the calibrated dk preset fits its baseline to each simulated register: fixed-point
    steps log r_k += log(target_k / share_k), each on the episodes drawn with the same random
    numbers as the register's own (a copy of ``rng``, which is not advanced), so that the
    shares of every seed meet the targets up to the rounding of whole spells.
    """
    shift = np.zeros(len(alpha))
    if not op.shares:
        return shift
    state = rng.bit_generator.state
    for _ in range(CALIBRATION_ROUNDS):
        trial = np.random.default_rng()
        trial.bit_generator.state = state
        cause = _episodes(origin, eta_x + shift, muni_eta, alpha, follow, p, trial)["cause"]
        counts = np.bincount(cause[cause >= 0], minlength=len(alpha))
        shift += np.log(np.asarray(op.shares) * len(cause) / np.maximum(counts, 1))
    return shift


def _episodes(origin: np.ndarray, eta_x: np.ndarray, muni_eta: np.ndarray, alpha: np.ndarray,
              follow: np.ndarray, p: Preset, rng: np.random.Generator) -> pd.DataFrame:
    n = len(origin)
    t_first, cause_first = _latent(eta_x + muni_eta[origin], alpha, np.zeros(n), rng)
    move_at, movers, dest, keep, moved = moves(origin, t_first, follow, len(muni_eta), p, rng)
    t_dest, cause_dest = _latent(eta_x[movers] + muni_eta[dest], alpha, move_at[movers], rng)
    ev1 = ~moved & (t_first <= follow)
    ev2 = t_dest <= follow[movers]
    first = pd.DataFrame({"person": np.arange(n), "muni": origin, "start": 0.0,
                          "stop": np.where(moved, move_at, np.minimum(t_first, follow)),
                          "event": ev1.astype(int), "cause": np.where(ev1, cause_first, -1)})
    second = pd.DataFrame({"person": movers, "muni": dest, "start": move_at[movers],
                           "stop": np.minimum(t_dest, follow[movers]), "event": ev2.astype(int),
                           "cause": np.where(ev2, cause_dest, -1)})
    out = pd.concat([first[keep], second], ignore_index=True)
    return out.sort_values(["person", "start"], kind="stable").reset_index(drop=True)


def _spells_table(ep: pd.DataFrame, persons: pd.DataFrame, names: list[str],
                  labels: list[str], p: Preset) -> pd.DataFrame:
    cols = individual_columns(p)[0] + [c for c in p.register_columns if c in persons]
    per_month = {"months": 1.0, "weeks": 52.0 / 12.0}[p.time_unit]
    start, stop = ep["start"].to_numpy() * per_month, ep["stop"].to_numpy() * per_month
    if p.time_unit == "weeks":  # whole weeks, at least one (as register._spells_table)
        start = np.round(start)
        stop = np.maximum(np.round(stop), start + 1)
    else:
        start = start.round(3)
        stop = np.maximum(stop.round(3), start + 0.001)
    cause = ep["cause"].to_numpy()
    outcome = np.where(cause >= 0, np.asarray(labels, dtype=object)[np.maximum(cause, 0)], None)
    out = pd.DataFrame({"person_id": ep["person"].to_numpy() + 1,
                        "municipality": np.asarray(names, dtype=object)[ep["muni"].to_numpy()],
                        "start": start, "stop": stop, "event": ep["event"].to_numpy(),
                        "outcome": outcome})
    return pd.concat([out, persons[cols].iloc[ep["person"].to_numpy()].reset_index(drop=True)],
                     axis=1)


def true_months(eta: np.ndarray, u_rows: np.ndarray, alpha: np.ndarray, codes: np.ndarray,
                n_munis: int, horizon: float) -> tuple[np.ndarray, np.ndarray]:
    """Observed and expected months free of each outcome per municipality (the fit's quadrature).

    ``eta`` (episodes, K): log hazard in months without the effects; ``u_rows`` (municipality,
    K). Returns two (municipality, K) arrays, with the effects and with none.
    """
    order = np.argsort(codes, kind="stable")
    starts = np.searchsorted(codes[order], np.arange(n_munis + 1))
    power, g_rmtl, g_cif = node_terms(alpha[None, :], horizon, horizon)
    base = (eta[order] + alpha * np.log(horizon)).T[None, :, :]  # model time: t / horizon
    zero = np.zeros((1, n_munis, len(alpha)))
    obs, exp_, _, _ = _incidence_sums(np.ascontiguousarray(base), zero,
                                      np.ascontiguousarray(u_rows[None]), power, g_rmtl, g_cif,
                                      starts)
    n = np.maximum(np.diff(starts), 1)[:, None]
    return horizon - obs[0] / n, horizon - exp_[0] / n


def _truth(ep: pd.DataFrame, eta_x: np.ndarray, mu_z: np.ndarray, u: np.ndarray,
           alpha: np.ndarray, names: list[str], labels: list[str],
           p: Preset) -> tuple[pd.DataFrame, pd.DataFrame]:
    person, codes = ep["person"].to_numpy(), ep["muni"].to_numpy()
    eta = eta_x[person] + mu_z[codes]
    obs, exp_ = true_months(eta, u, alpha, codes, len(names), p.horizon_months)
    effect = obs - exp_
    k = p.top_k
    combined = effect.sum(axis=1)
    rank = pd.Series(combined).rank(method="first").astype(int).to_numpy()
    n = np.bincount(codes, minlength=len(names))
    truth = pd.DataFrame({
        "municipality": names, "n_spells": n, "true_effect_months": combined,
        "true_observed_months": p.horizon_months - (p.horizon_months - obs).sum(axis=1),
        "true_expected_months": p.horizon_months - (p.horizon_months - exp_).sum(axis=1),
        "true_rank": rank, f"true_top{k}": rank <= k, f"true_bottom{k}": rank > len(names) - k})
    rows = []
    for j, label in enumerate(labels):
        r = pd.Series(effect[:, j]).rank(method="first").astype(int).to_numpy()
        rows.append(pd.DataFrame({
            "municipality": names, "outcome": label, "true_log_hr": u[:, j],
            "true_municipal_log_hr": mu_z[:, j], "true_effect_months": effect[:, j],
            "true_rank": r, f"true_top{k}": r <= k}))
    return truth, pd.concat(rows, ignore_index=True)


def write_outcome_register(name: str, seed: int, out: str | Path, *,
                           register_form: bool = False, **overrides: object) -> Path:
    """Simulate and write spells.csv, municipal.csv, truth.csv, truth_outcomes.csv, spec.toml.

    The spec names ``[data] outcome = "outcome"`` and the outcomes in order. Of the
    command line's preset options only ``--scale`` applies (the outcomes have their own
    effects and baselines); the others are refused.
    """
    other = sorted(k for k in overrides if k != "scale")
    if other or register_form:
        option = "--register-form" if register_form else f"--{other[0].replace('_', '-')}"
        raise InputError(f"preset {name!r} (competing outcomes) takes --scale only",
                         option=option)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tables = simulate_outcome_register(name, seed, **overrides)
    files = {"spells": "spells.csv", "municipal": "municipal.csv", "truth": "truth.csv",
             "truth_outcomes": "truth_outcomes.csv"}
    for key, fname in files.items():
        tables[key].to_csv(out / fname, index=False)
    p = _base_preset(PRESETS[name], overrides)
    spec = spec_for(p, files)
    spec["data"] |= {"outcome": "outcome",
                     "outcomes": [c.label for c in PRESETS[name].causes]}
    (out / "spec.toml").write_text(tomli_w.dumps(spec))
    return out
