r"""Registers in calendar time: municipal covariates by year and a reform with nested truth.

A preset with ``panel_years`` (``tiny-panel``) is simulated on dates, because its hazard
changes at 1 January: person i, arriving on :math:`A_i`, living in old municipality o at
months t since arrival, has

.. math::

    h_i(t) = \lambda\alpha t^{\alpha - 1}
             \exp\big(x_i^\top\beta + \gamma^\top z_{o, y(A_i + t)} + u^{old}_o\big),

a Weibull baseline whose municipal part changes with the calendar year y. Municipal
covariates are :math:`z_{o,y} = \zeta_o + \text{year\_sd}\,\epsilon_{o,y}` with standard
normal :math:`\zeta_o, \epsilon_{o,y}` (raw values on the preset's scales; the true
coefficients are per SD over the municipality-years of the panel, each municipality
weighing the same, as the fit standardises them). The municipalities merge, at a reform on
1 January of the middle year, in groups of one to four into new ones (``R01``, ...):
:math:`u^{new}_n \sim N(0, \text{effect\_sd})`, :math:`u^{old}_o \sim N(u^{new}_{n(o)},
\text{old\_sd})`. The residence history keeps the old codes throughout (as registers that
kept them did), so ``munirank episodes`` with ``crosswalk_level = "old"`` gives the old
municipalities with the new one beside.

Event times are exact: each person's time at risk is cut into pieces at 1 January and at the
move, the cumulative hazard of each piece is :math:`\lambda e^{\eta_p}(t_1^\alpha -
t_0^\alpha)`, and the event comes where the running sum first passes an Exp(1) draw (inverted
within its piece). One move at most, as in :mod:`munirank.simulation.register`.

Truth (the fit's definitions, :mod:`munirank.posterior.cells`): per new municipality the mean
over its unsplit episodes of :math:`\sum_p w_p [\mathrm{RMST}(\eta_p + u^{old}) -
\mathrm{RMST}(\eta_p)]`, pieces weighted by their share of the episode's time at risk
(``truth.csv``, with ``true_log_hr`` = :math:`u^{new}`); the same per old municipality
(``truth_old.csv``); the coefficients (``truth_covariates.csv``).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tomli_w

from munirank.errors import InputError
from munirank.input.dates import NS_PER_DAY, unit_ns
from munirank.input.years import year_pieces
from munirank.posterior.effects import rmst_weibull
from munirank.simulation.presets import (
    _RAW_SCALES,
    Preset,
    draw_effects,
    individual_columns,
    linear_predictor,
    municipality_counts,
    person_table,
    preset,
)
from munirank.simulation.register_form import simulate_register_form

MONTH_NS = unit_ns("months")


def _jan1(year: int) -> int:
    return int(np.datetime64(f"{year}-01-01", "ns").view(np.int64))


def _reform(n: int, rng: np.random.Generator) -> tuple[np.ndarray, list[str]]:
    """Old municipality -> new (groups of one to four, in random order), and the new names."""
    order = rng.permutation(n)
    sizes = rng.integers(1, 5, n)
    group = np.empty(n, np.int64)
    group[order] = np.repeat(np.arange(n), sizes)[:n]
    _, group = np.unique(group, return_inverse=True)
    return group, [f"R{g + 1:02d}" for g in range(group.max() + 1)]


def _municipal_years(names: list[str], years: np.ndarray, p: Preset,
                     rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """The municipal table by year (raw values) and the true municipal log hazard per cell."""
    n, k = len(names), len(p.municipal)
    z = rng.normal(size=(n, 1, k)) + p.year_sd * rng.normal(size=(n, len(years), k))
    table = pd.DataFrame({"municipality": np.repeat(names, len(years)),
                          "year": np.tile(years, n)})
    eta = np.zeros((n, len(years)))
    for j, (c, g) in enumerate(p.municipal.items()):
        m, s = _RAW_SCALES.get(c, (0.0, 1.0))
        table[c] = (m + s * z[:, :, j]).round(4).ravel()
        raw = table[c].to_numpy().reshape(n, len(years))
        eta += g * (raw - raw.mean()) / raw.std()  # per SD over the panel's cells
    return table, eta


def _time_at_risk(counts: pd.Series, p: Preset, rng: np.random.Generator) -> pd.DataFrame:
    """Persons' exposure intervals (origin; after a move, the destination), arrival dates."""
    n_m = len(counts)
    origin = np.repeat(np.arange(n_m), counts.to_numpy())
    n = len(origin)
    first, last = p.panel_years
    arrival = _jan1(first) + rng.integers(0, (_jan1(last - 1) - _jan1(first)) // NS_PER_DAY,
                                          n) * NS_PER_DAY
    follow = (_jan1(last + 1) - arrival) / MONTH_NS
    moves = rng.random(n) < p.mover_share
    move_at = rng.uniform(1.0, follow)
    dest = (origin + 1 + rng.integers(0, n_m - 1, n)) % n_m
    person = np.concatenate([np.arange(n), np.flatnonzero(moves)])
    return pd.DataFrame({
        "person": person, "muni": np.concatenate([origin, dest[moves]]),
        "start": np.concatenate([np.zeros(n), move_at[moves]]),
        "stop": np.concatenate([np.where(moves, move_at, follow), follow[moves]]),
        "arrival": arrival[person]}).sort_values(["person", "start"], kind="stable")


def _events(intervals: pd.DataFrame, eta_x: np.ndarray, muni_year: np.ndarray,
            u: np.ndarray, years: np.ndarray, p: Preset,
            rng: np.random.Generator) -> pd.DataFrame:
    """Pieces (at 1 January) up to each person's event or end of follow-up, with the event."""
    row, _, s, t, year = year_pieces(intervals["start"].to_numpy(), intervals["stop"].to_numpy(),
                                     intervals["arrival"].to_numpy(), MONTH_NS)
    piece = intervals.iloc[row].reset_index(drop=True).assign(start=s, stop=t, year=year,
                                                              interval=row)
    person, muni = piece["person"].to_numpy(), piece["muni"].to_numpy()
    eta = eta_x[person] + muni_year[muni, year - years[0]] + u[muni]
    rate = p.base_rate_per_month * np.exp(eta)
    increment = rate * (t**p.alpha - s**p.alpha)
    total = np.cumsum(increment)
    start_of = np.searchsorted(person, np.arange(person.max() + 1))
    before = total - increment - np.where(start_of[person] > 0,
                                          total[start_of[person] - 1], 0.0)
    threshold = rng.exponential(size=person.max() + 1)[person]
    hit = (before < threshold) & (before + increment >= threshold)
    reached = before < threshold
    keep = reached  # pieces that start before the event
    stop = np.where(hit, s**p.alpha + (threshold - before) / rate, t**p.alpha) ** (1 / p.alpha)
    return piece.assign(stop=np.minimum(stop, t), event=hit.astype(int),
                        eta=eta - u[muni])[keep].reset_index(drop=True)


def _truth(pieces: pd.DataFrame, u_old: np.ndarray, group: np.ndarray, names: list[str],
           new_names: list[str], u_new: np.ndarray, p: Preset) -> tuple[pd.DataFrame, ...]:
    log_rate = np.log(p.base_rate_per_month) + pieces["eta"].to_numpy()
    muni = pieces["muni"].to_numpy()
    length = (pieces["stop"] - pieces["start"]).to_numpy()
    interval = pieces["interval"].to_numpy()
    w = length / np.bincount(interval, weights=length)[interval]
    observed = w * rmst_weibull(log_rate + u_old[muni], p.alpha, p.horizon_months)
    expected = w * rmst_weibull(log_rate, p.alpha, p.horizon_months)
    first = np.unique(interval, return_index=True)[1]

    def per(unit: np.ndarray, n: int) -> tuple[np.ndarray, ...]:
        count = np.bincount(unit[first], minlength=n)
        obs = np.bincount(unit, weights=observed, minlength=n) / count
        exp_ = np.bincount(unit, weights=expected, minlength=n) / count
        return count, obs - exp_, obs, exp_

    def table(key: str, codes: list[str], u: np.ndarray, unit: np.ndarray) -> pd.DataFrame:
        count, effect, obs, exp_ = per(unit, len(codes))
        rank = pd.Series(effect).rank(method="first").astype(int).to_numpy()
        return pd.DataFrame({key: codes, "n_spells": count, "true_log_hr": u,
                             "true_effect_months": effect, "true_observed_months": obs,
                             "true_expected_months": exp_, "true_rank": rank})

    new = table("municipality", new_names, u_new, group[muni])
    k = p.top_k
    new[f"true_top{k}"] = new["true_rank"] <= k
    new[f"true_bottom{k}"] = new["true_rank"] > len(new) - k
    old = table("municipality", names, u_old, muni).drop(columns="true_rank")
    old.insert(1, "municipality_new", np.asarray(new_names)[group])
    return new, old


def simulate_panel(name: str, seed: int, **overrides: Any) -> dict[str, pd.DataFrame]:
    """Simulate a calendar-time register with a reform (module docstring).

    Returns
    -------
    dict of pandas.DataFrame
        ``spells`` (unsplit episodes with ``arrival`` in ns, for the register form),
        ``pieces`` (split at 1 January: ``episode``, ``year``, ``municipality_new``),
        ``municipal`` (by year), ``crosswalk``, ``truth``, ``truth_old``,
        ``truth_covariates``.
    """
    p = replace(preset(name), **overrides)
    if p.baseline != "weibull" or p.effect_dist not in ("normal", "student_t"):
        raise InputError("a calendar-time preset simulates the Weibull model only",
                         column="--baseline")
    rng = np.random.default_rng(seed)
    counts = municipality_counts(p, rng)
    names = counts.index.tolist()
    group, new_names = _reform(len(names), rng)
    u_new = draw_effects(p, len(new_names), rng)
    u_old = u_new[group] + p.old_sd * rng.normal(size=len(names))
    years = np.arange(p.panel_years[0], p.panel_years[1] + 1)
    municipal, muni_year = _municipal_years(names, years, p, rng)
    intervals = _time_at_risk(counts, p, rng)
    persons, _ = person_table(p, np.zeros(int(counts.sum())), rng)
    eta_x = linear_predictor(persons, p.individual)
    pieces = _events(intervals, eta_x, muni_year, u_old, years, p, rng)
    truth, truth_old = _truth(pieces, u_old, group, names, new_names, u_new, p)
    return {"spells": _episodes(pieces, persons, names, p), "municipal": municipal,
            "pieces": _pieces(pieces, persons, names, new_names, group, p),
            "crosswalk": pd.DataFrame({"old": names, "new": np.asarray(new_names)[group],
                                       "date": f"{(p.panel_years[0] + p.panel_years[1]) // 2}"
                                               "-01-01"}),
            "truth": truth, "truth_old": truth_old,
            "truth_covariates": pd.DataFrame(
                [{"covariate": k, "kind": "individual", "true_log_hr_per_unit": b}
                 for k, b in p.individual.items()]
                + [{"covariate": c, "kind": "municipal", "true_log_hr_per_sd": g}
                   for c, g in p.municipal.items()])}


def _covariates(persons: pd.DataFrame, person: np.ndarray, p: Preset) -> pd.DataFrame:
    return persons[individual_columns(p)[0]].iloc[person].reset_index(drop=True)


def _episodes(pieces: pd.DataFrame, persons: pd.DataFrame, names: list[str],
              p: Preset) -> pd.DataFrame:
    """The unsplit episodes, as ``simulate`` writes them, with each person's arrival (ns)."""
    ep = pieces.groupby("interval", sort=True).agg(
        person=("person", "first"), muni=("muni", "first"), start=("start", "first"),
        stop=("stop", "last"), event=("event", "max"), arrival=("arrival", "first"))
    out = pd.DataFrame({"person_id": ep["person"].to_numpy() + 1,
                        "municipality": np.asarray(names, object)[ep["muni"].to_numpy()],
                        "start": ep["start"].to_numpy(), "stop": ep["stop"].to_numpy(),
                        "event": ep["event"].to_numpy(),
                        "outcome": np.where(ep["event"] == 1, p.outcome_labels[0], "none"),
                        "arrival": ep["arrival"].to_numpy()})
    return pd.concat([out, _covariates(persons, ep["person"].to_numpy(), p)], axis=1)


def _pieces(pieces: pd.DataFrame, persons: pd.DataFrame, names: list[str],
            new_names: list[str], group: np.ndarray, p: Preset) -> pd.DataFrame:
    muni = pieces["muni"].to_numpy()
    out = pd.DataFrame({"person_id": pieces["person"].to_numpy() + 1,
                        "municipality": np.asarray(names, object)[muni],
                        "municipality_new": np.asarray(new_names, object)[group[muni]],
                        "start": pieces["start"].to_numpy(), "stop": pieces["stop"].to_numpy(),
                        "event": pieces["event"].to_numpy(),
                        "episode": pieces["interval"].rank(method="dense").astype(int),
                        "year": pieces["year"].to_numpy()})
    return pd.concat([out, _covariates(persons, pieces["person"].to_numpy(), p)], axis=1)


def panel_spec(p: Preset) -> dict:
    """spec.toml of a calendar-time register: fit reads the pieces, episodes the registers."""
    individual, categorical = individual_columns(p)
    return {
        "data": {"group": "municipality", "time": "stop", "event": "event", "entry": "start",
                 "time_unit": "months", "municipal_table": "municipal.csv",
                 "municipal_year": "year", "year": "year", "episode": "episode",
                 "parent": "municipality_new"},
        "covariates": {"individual": individual, "categorical": categorical,
                       "municipal": list(p.municipal)},
        "outcome": {"horizon_months": p.horizon_months}, "ranking": {"top_k": p.top_k}}


def write_panel(name: str, seed: int, out: Path, *, register_form: bool = False,
                **overrides: Any) -> Path:
    """spells.csv (the pieces), municipal.csv (by year), truth files, spec.toml, [registers].

    With ``register_form``, persons.csv, residence.csv (old codes throughout) and
    crosswalk.csv, and a spec that ``munirank episodes`` reads (split at years, on the old
    municipalities), which gives back spells.csv.
    """
    tables = simulate_panel(name, seed, **overrides)
    p = replace(preset(name), **overrides)
    tables["pieces"].to_csv(out / "spells.csv", index=False)
    tables["municipal"].to_csv(out / "municipal.csv", index=False)
    for key in ("truth", "truth_old", "truth_covariates"):
        tables[key].to_csv(out / f"{key}.csv", index=False)
    spec = panel_spec(p)
    if register_form:
        from munirank.simulation.register_form import REGISTERS

        persons, residence = simulate_register_form(tables["spells"],
                                                    np.random.default_rng([seed, 24]))
        persons.to_csv(out / "persons.csv", index=False, lineterminator="\n")
        residence.to_csv(out / "residence.csv", index=False, lineterminator="\n")
        tables["crosswalk"].to_csv(out / "crosswalk.csv", index=False, lineterminator="\n")
        spec["data"] |= {"crosswalk": "crosswalk.csv", "crosswalk_level": "old"}
        spec["registers"] = dict(REGISTERS) | {"split_years": True}
    (out / "spec.toml").write_text(tomli_w.dumps(spec))
    return out
