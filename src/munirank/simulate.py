"""Simulated registers with known truth.

A register is simulated person by person from the model munirank fits (Weibull PH with
individual covariates, municipal covariates and municipality effects), on a time axis of
months since residence permit, with administrative right censoring at the end of follow-up
and movers: a mover's first episode is censored at the move, and the rest of the spell is a
delayed-entry episode in the new municipality, drawn from the conditional survival there.

Episode counts per municipality are exact: each mover's destination loses one randomly chosen
non-moving person, so that the published spell counts of the AKF municipalities hold.

Truth (``truth.csv``) uses the fit's own definitions (:mod:`munirank.effects`): the true log
hazard ratio ``u_m``, the true effect in months (mean RMST over m's episodes with ``u_m``
minus the same with ``u_m = 0``), the true rank (1 = fastest) and top/bottom-k membership.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import tomli_w

from munirank.effects import rmst_weibull
from munirank.errors import InputError


@dataclass(frozen=True)
class Preset:
    """What a simulated register looks like."""

    name: str
    n_small: int = 0                      # extra small municipalities besides the named ones
    named_counts: tuple[tuple[str, int], ...] = ()
    small_range: tuple[int, int] = (5, 79)
    effect_sd: float = 0.3
    effect_dist: str = "normal"
    alpha: float = 1.1
    base_rate_per_month: float = 0.0105  # rate at reference covariates
    mover_share: float = 0.10
    follow_up: tuple[float, float] = (11.5, 83.5)  # months from permit to end of follow-up
    time_unit: str = "months"
    horizon_months: float = 48.0
    individual: dict[str, float] = field(default_factory=dict)
    municipal: dict[str, float] = field(default_factory=dict)
    scale: float = 1.0
    top_k: int = 10


def _akf_counts() -> tuple[tuple[str, int], ...]:
    table = pd.read_csv(resources.files("munirank.bundled") / "akf2006_table4.csv")
    return tuple(zip(table["municipality"], table["n_spells"].astype(int), strict=True))


def _seed_facts() -> dict:
    return json.loads((resources.files("munirank.bundled") / "seed_facts.json").read_text())


# True log hazard ratios of the simulated covariates (per unit, not standardised).
DK_INDIVIDUAL = {
    "male": 0.40, "age": -0.025, "children": -0.08, "health_services": -0.06,
    "permit_year": 0.03, "deprived_area": -0.15,
    "residence[family_refugee]": -0.10, "residence[family_other]": 0.25,
    "partner[immigrant]": -0.10, "partner[danish]": 0.30,
    "language_track[1]": -0.45, "language_track[3]": 0.30,
    "origin[africa]": -0.20, "origin[former_yugoslavia]": 0.15, "origin[asia]": 0.10,
    "origin[other]": 0.20,
}
DK_MUNICIPAL = {
    "unemployment": -0.15, "third_country_share": -0.05, "integration_share": -0.05,
    "skilled_jobs_share": 0.08, "jobs_per_capita": 0.12,
}

PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        name="tiny", named_counts=tuple((f"M{i:02d}", n) for i, n in enumerate(
            [420, 300, 240, 200, 180, 160, 140, 120, 110, 100, 90, 80, 70, 60, 50, 40, 30, 25,
             15, 8], start=1)),
        effect_sd=0.4, base_rate_per_month=0.02,
        individual={"male": 0.4, "age": -0.03}, municipal={"unemployment": -0.2}, top_k=5),
}


def preset(name: str) -> Preset:
    """Return the named preset (tiny, dk-1999-2005)."""
    if name == "dk-1999-2005":
        return Preset(name=name, n_small=199, named_counts=_akf_counts(),
                      time_unit="weeks", individual=DK_INDIVIDUAL, municipal=DK_MUNICIPAL,
                      base_rate_per_month=0.0072)
    if name not in PRESETS:
        raise InputError(f"unknown preset; choose one of {sorted([*PRESETS, 'dk-1999-2005'])}",
                         column="--preset")
    return PRESETS[name]


def _municipality_counts(p: Preset, rng: np.random.Generator) -> pd.Series:
    counts = dict(p.named_counts)
    if p.n_small:
        total = _seed_facts()["dk_2006"]["spells_total"] if p.name.startswith("dk") else None
        lo, hi = p.small_range
        small = rng.integers(lo, hi + 1, size=p.n_small).astype(float)
        if total is not None:  # spread the remaining spells over the small municipalities
            rest = total - sum(counts.values())
            small = np.clip(np.round(small * rest / small.sum()), 1, hi)
            small[0] += rest - small.sum()
        for i, n in enumerate(small.astype(int), start=1):
            counts[f"Small {i:03d}"] = int(n)
    series = pd.Series(counts, dtype=float)
    return np.maximum(np.round(series * p.scale), 1).astype(int)


def _persons(n: int, p: Preset, rng: np.random.Generator) -> pd.DataFrame:
    """Individual covariates of the kinds AKF adjusted for (only those the preset uses)."""
    df = pd.DataFrame({
        "male": rng.binomial(1, 11815 / 23563, n),
        "age": np.clip(rng.normal(31, 8, n), 18, 64).round(),
        "children": rng.poisson(1.1, n),
        "health_services": rng.poisson(2.0, n),
        "permit_year": rng.integers(1999, 2005, n),
        "deprived_area": rng.binomial(1, 0.3, n),
        "residence": rng.choice(["refugee", "family_refugee", "family_other"], n,
                                p=[0.51, 0.25, 0.24]),
        "partner": rng.choice(["none", "immigrant", "danish"], n, p=[0.45, 0.4, 0.15]),
        "language_track": rng.choice(["1", "2", "3"], n, p=[0.2, 0.5, 0.3]),
        "origin": rng.choice(["middle_east", "africa", "former_yugoslavia", "asia", "other"], n,
                             p=[0.4, 0.25, 0.15, 0.12, 0.08]),
    })
    return df


def _linear_predictor(df: pd.DataFrame, coefs: dict[str, float]) -> np.ndarray:
    eta = np.zeros(len(df))
    for key, b in coefs.items():
        if "[" in key:
            var, level = key[:-1].split("[")
            eta += b * (df[var].astype(str) == level).to_numpy()
        else:
            eta += b * (df[key].to_numpy(float) - _REFERENCE.get(key, 0.0))
    return eta


# Numeric covariates enter the true hazard relative to these values (the base rate's person).
_REFERENCE = {"age": 30.0, "permit_year": 2001.5, "children": 1.0, "health_services": 2.0}


def _individual_columns(p: Preset) -> tuple[list[str], list[str]]:
    names = sorted({k.split("[")[0] for k in p.individual}, key=list(_PERSON_ORDER).index)
    categorical = [n for n in names if n in ("residence", "partner", "language_track", "origin")]
    return names, categorical


_PERSON_ORDER = ("male", "age", "children", "health_services", "permit_year", "deprived_area",
                 "residence", "partner", "language_track", "origin")


def _municipal_table(names: list[str], p: Preset, rng: np.random.Generator) -> pd.DataFrame:
    k = len(p.municipal)
    z = rng.normal(size=(len(names), k))
    table = pd.DataFrame(z, columns=list(p.municipal), index=pd.Index(names, name="municipality"))
    # put municipal covariates on plausible raw scales (percent / per inhabitant)
    raw_scales = {"unemployment": (6.0, 2.0), "third_country_share": (4.0, 2.0),
                  "integration_share": (0.5, 0.2), "skilled_jobs_share": (40.0, 8.0),
                  "jobs_per_capita": (0.45, 0.08)}
    raw = table.copy()
    for c in table:
        m, s = raw_scales.get(c, (0.0, 1.0))
        raw[c] = (m + s * table[c]).round(4)
    return raw


def simulate_register(name: str, seed: int, **overrides: float | str) -> dict[str, pd.DataFrame]:
    """Simulate a register from a preset.

    Parameters
    ----------
    name : str
        Preset name: ``tiny`` or ``dk-1999-2005``.
    seed : int
        Seed of the local random generator.
    **overrides
        Preset fields to change (``effect_sd``, ``effect_dist``, ``scale``).

    Returns
    -------
    dict of pandas.DataFrame
        ``spells`` (one row per episode), ``municipal`` (one row per municipality) and
        ``truth`` (per municipality).
    """
    p = replace(preset(name), **overrides)
    rng = np.random.default_rng(seed)
    counts = _municipality_counts(p, rng)
    names = counts.index.tolist()
    municipal = _municipal_table(names, p, rng)
    zstd = (municipal - municipal.mean()) / municipal.std(ddof=0)
    mu_z = zstd.to_numpy() @ np.array(list(p.municipal.values()))
    u = _draw_effects(p, len(names), rng)

    origin = np.repeat(np.arange(len(names)), counts.to_numpy())
    persons = _persons(len(origin), p, rng)
    eta_x = _linear_predictor(persons, p.individual) + np.log(p.base_rate_per_month)
    follow = rng.uniform(*p.follow_up, len(origin))
    episodes = _episodes(origin, eta_x, mu_z + u, follow, counts.to_numpy(), p, rng)
    spells = _spells_table(episodes, persons, names, p)
    truth = _truth(episodes, persons, names, u, mu_z, eta_x, p)
    return {"spells": spells, "municipal": municipal.reset_index(), "truth": truth}


def _draw_effects(p: Preset, n: int, rng: np.random.Generator) -> np.ndarray:
    if p.effect_dist == "student_t":
        return p.effect_sd * rng.standard_t(4, n) / np.sqrt(2.0)  # unit variance at nu = 4
    if p.effect_dist != "normal":
        raise InputError("must be normal or student_t", column="--effect-dist")
    return p.effect_sd * rng.normal(size=n)


def _event_time(rate: np.ndarray, start: np.ndarray, alpha: float,
                rng: np.random.Generator) -> np.ndarray:
    """Draw T > start from a Weibull PH hazard alpha * rate * t^(alpha-1) by inversion."""
    e = rng.exponential(size=len(rate))
    return (start**alpha + e / rate) ** (1.0 / alpha)


def _episodes(origin: np.ndarray, eta_x: np.ndarray, muni_eta: np.ndarray, follow: np.ndarray,
              counts: np.ndarray, p: Preset, rng: np.random.Generator) -> pd.DataFrame:
    n = len(origin)
    t_origin = _event_time(np.exp(eta_x + muni_eta[origin]), np.zeros(n), p.alpha, rng)
    move_at = rng.uniform(1.0, follow)
    wants = rng.random(n) < p.mover_share * 1.6  # not everyone is still at risk at the move
    mover = wants & (t_origin > move_at) & (move_at < follow)
    mover_idx = np.flatnonzero(mover)
    dest = rng.choice(len(counts), size=len(mover_idx), p=counts / counts.sum())
    same = dest == origin[mover_idx]
    dest[same] = (dest[same] + 1) % len(counts)
    keep = np.ones(n, bool)
    # each arrival replaces one random non-moving person of the destination: counts stay exact
    stayers = {m: list(rng.permutation(np.flatnonzero((origin == m) & ~mover)))
               for m in np.unique(dest)}
    ok = np.ones(len(mover_idx), bool)
    for j, m in enumerate(dest):
        if stayers[m]:
            keep[stayers[m].pop()] = False
        else:
            ok[j] = False
    mover_idx, dest = mover_idx[ok], dest[ok]
    mover[:] = False
    mover[mover_idx] = True
    t_dest = _event_time(np.exp(eta_x[mover_idx] + muni_eta[dest]), move_at[mover_idx],
                         p.alpha, rng)
    first_exit = np.where(mover, move_at, np.minimum(t_origin, follow))
    first = pd.DataFrame({"person": np.arange(n), "muni": origin, "start": 0.0,
                          "stop": first_exit, "event": (~mover & (t_origin <= follow)).astype(int)})
    second = pd.DataFrame({"person": mover_idx, "muni": dest, "start": move_at[mover_idx],
                           "stop": np.minimum(t_dest, follow[mover_idx]),
                           "event": (t_dest <= follow[mover_idx]).astype(int)})
    out = pd.concat([first[keep], second], ignore_index=True)
    return out.sort_values(["person", "start"], kind="stable").reset_index(drop=True)


def _spells_table(ep: pd.DataFrame, persons: pd.DataFrame, names: list[str],
                  p: Preset) -> pd.DataFrame:
    cols, _ = _individual_columns(p)
    per_month = {"months": 1.0, "weeks": 52.0 / 12.0}[p.time_unit]
    start, stop = ep["start"] * per_month, ep["stop"] * per_month
    if p.time_unit == "weeks":  # registers count whole weeks; an episode lasts at least one
        start = np.floor(start)
        stop = np.maximum(np.ceil(stop), start + 1)
    else:
        start, stop = start.round(3), np.maximum(stop.round(3), start + 0.001)
    out = pd.DataFrame({"person_id": ep["person"] + 1,
                        "municipality": np.asarray(names, dtype=object)[ep["muni"]],
                        "start": start, "stop": stop, "event": ep["event"]})
    return pd.concat([out, persons.loc[ep["person"], cols].reset_index(drop=True)], axis=1)


def _truth(ep: pd.DataFrame, persons: pd.DataFrame, names: list[str], u: np.ndarray,
           mu_z: np.ndarray, eta_x: np.ndarray, p: Preset) -> pd.DataFrame:
    eta0 = eta_x[ep["person"]] + mu_z[ep["muni"]]
    codes = ep["muni"].to_numpy()
    observed = rmst_weibull(eta0 + u[codes], p.alpha, p.horizon_months)
    expected = rmst_weibull(eta0, p.alpha, p.horizon_months)
    n = np.bincount(codes, minlength=len(names))
    effect = (np.bincount(codes, weights=observed - expected, minlength=len(names)) / n)
    rank = pd.Series(effect).rank(method="first").astype(int).to_numpy()
    k = p.top_k
    return pd.DataFrame({
        "municipality": names, "n_spells": n, "true_log_hr": u,
        "true_effect_months": effect, "true_rank": rank,
        f"true_top{k}": rank <= k, f"true_bottom{k}": rank > len(names) - k,
    })


def spec_for(p: Preset, out_files: dict[str, str]) -> dict:
    """The spec.toml content that fits a simulated register."""
    individual, categorical = _individual_columns(p)
    return {
        "data": {"group": "municipality", "time": "stop", "event": "event", "entry": "start",
                 "time_unit": p.time_unit, "municipal_table": out_files["municipal"]},
        "covariates": {"individual": individual, "categorical": categorical,
                       "municipal": list(p.municipal)},
        "outcome": {"horizon_months": p.horizon_months},
        "ranking": {"top_k": p.top_k},
    }


def write_register(name: str, seed: int, out: str | Path, **overrides: float | str) -> Path:
    """Simulate and write spells.csv, municipal.csv, truth.csv and spec.toml to ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tables = simulate_register(name, seed, **overrides)
    files = {"spells": "spells.csv", "municipal": "municipal.csv", "truth": "truth.csv"}
    for key, fname in files.items():
        tables[key].to_csv(out / fname, index=False)
    p = replace(preset(name), **overrides)
    (out / "spec.toml").write_text(tomli_w.dumps(spec_for(p, files)))
    return out
