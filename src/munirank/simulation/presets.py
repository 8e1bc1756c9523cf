"""What simulated registers look like: presets, true coefficients and person generators.

Presets
-------
``tiny``
    20 municipalities (M01..M20), Weibull PH, three covariates; for tests and examples.
``tiny-panel``
    40 municipalities (K01..K40, 450 down to 17 persons) in calendar time, 2001-2008:
    unemployment by year (SD 0.8 within a municipality against 1 between them) and a reform
    merging them into new ones, effects nested (:mod:`munirank.simulation.panel`).
``dk-1999-2005``
    The Danish register behind the AKF 2006 benchmark (INFO no. 1, June 2006): 23,563 spells,
    permits 1999-2004 followed to week 50 of 2005, time in weeks, the 72 ranked municipalities
    with their published spell counts and 199 small ones (271 pre-2007 municipalities). The
    baseline is calibrated per permit year to the published table 3 (see
    :mod:`munirank.simulate`).
``dk-two-periods``
    Two measurements ("2007", "2009") of a register like ``dk-1999-2005``, each half its
    size (so both together are about one dk register), with true effects correlated 0.8
    between the periods (SD 0.4 in each) and three small municipalities absent from the
    first (:mod:`munirank.simulation.periods`); the spec sets ``[data] period``.
``no-2012-2018``
    A Norwegian introduction-programme register in the spirit of the IMDi 2019 report: about
    45,000 participants starting 2012-2018, 356 municipalities (Oslo large), time in months
    since programme start, outcome work or education, followed to the end of 2019, and a
    municipal indicator ``efficiency_network`` (KS efficiency network, about a third of the
    municipalities) with a true log hazard ratio of 0.10 per unit.

True coefficients are log hazard ratios: individual ones per unit of the raw column (relative
to a reference value, ``level[x]`` for a categorical level against the first level);
municipal ones per standard deviation over municipalities, except the 0/1 columns named in
``Preset.municipal_binary``, which are per unit.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from importlib import resources

import numpy as np
import pandas as pd
from scipy.special import expit

from munirank.errors import InputError


@dataclass(frozen=True)
class Preset:
    """What a simulated register looks like (every field can be overridden by name)."""

    name: str
    n_small: int = 0                      # extra small municipalities besides the named ones
    named_counts: tuple[tuple[str, int], ...] = ()
    small_range: tuple[int, int] = (5, 79)
    total: int | None = None              # exact spell total at scale 1 (small ones absorb)
    effect_sd: float = 0.3
    effect_dist: str = "normal"           # normal or student_t (nu = 4, unit variance)
    baseline: str = "weibull"             # weibull (PH) or loglogistic (proportional odds)
    alpha: float = 1.1                    # Weibull shape
    loglogistic_shape: float = 1.5        # kappa of the log-logistic baseline odds
    base_rate_per_month: float = 0.0105   # Weibull rate at reference covariates
    calibrated: bool = False              # baseline per permit year fitted to table 3
    mover_share: float = 0.10             # target share of spells that are mover episodes
    persons: str = "dk"                   # person generator: dk or no
    composition_sd: float = 0.0           # municipal differences in who lives there
    time_unit: str = "months"
    horizon_months: float = 48.0
    individual: dict[str, float] = field(default_factory=dict)
    municipal: dict[str, float] = field(default_factory=dict)
    municipal_binary: tuple[str, ...] = ()
    education_share: tuple[float, float] = (0.088, 0.075)  # among events: women, men
    outcome_labels: tuple[str, str] = ("self_support", "education")
    register_columns: tuple[str, ...] = ()  # person columns written besides the covariates
    scale: float = 1.0
    top_k: int = 10
    # calendar time (:mod:`munirank.simulation.panel`): arrivals in these years (the last two
    # excepted), followed to the end of the last; municipal covariates by year with this SD
    # within a municipality; a reform nesting old municipalities with effects of SD old_sd
    # around their new one's (effect_sd: the new ones')
    panel_years: tuple[int, ...] = ()  # (first, last) year, or () for time since arrival
    year_sd: float = 0.0
    old_sd: float = 0.0
    # repeated measurements (:mod:`munirank.simulation.periods`): the periods' labels, the
    # correlation of a municipality's true effects between periods, and the municipalities
    # (the last ones) absent from the first period
    periods: tuple[str, ...] = ()
    period_rho: float = 0.0
    absent_first: int = 0


def seed_facts() -> dict:
    """The published national figures bundled with the package (``seed_facts.json``)."""
    return json.loads((resources.files("munirank.bundled") / "seed_facts.json").read_text())


def akf_counts() -> tuple[tuple[str, int], ...]:
    """The 72 municipalities AKF ranked and their published spell counts."""
    table = pd.read_csv(resources.files("munirank.bundled") / "akf2006_table4.csv")
    return tuple(zip(table["municipality"], table["n_spells"].astype(int), strict=True))


# Cohort differences in the dk preset come from the calibrated baseline, hence permit_year 0.
DK_INDIVIDUAL = {
    "male": 0.48, "age": -0.025, "children": -0.08, "health_services": -0.06,
    "permit_year": 0.0, "deprived_area": -0.20,
    "residence[family_refugee]": -0.10, "residence[family_other]": 0.25,
    "partner[immigrant]": -0.10, "partner[danish]": 0.30,
    "language_track[1]": -0.45, "language_track[3]": 0.30,
    "origin[africa]": -0.25, "origin[former_yugoslavia]": 0.15, "origin[asia]": 0.10,
    "origin[other]": 0.20,
}
DK_MUNICIPAL = {
    "unemployment": -0.32, "third_country_share": -0.08, "integration_share": -0.13,
    "skilled_jobs_share": 0.16, "jobs_per_capita": 0.24,
}
# Permit-year shares of persons: permits fell after the 2002 reform.
DK_PERMIT_YEARS = {1999: 0.22, 2000: 0.21, 2001: 0.20, 2002: 0.15, 2003: 0.12, 2004: 0.10}
DK_END_OF_FOLLOW_UP = 2005 + 49.5 / 52.18  # week 50 of 2005, in years

NO_INDIVIDUAL = {
    "female": -0.11, "age": -0.02, "family_reunified": 0.10, "children": -0.05,
    "start_year": 0.02,
    "education[none]": -0.35, "education[primary]": -0.15, "education[higher]": 0.20,
}
NO_MUNICIPAL = {"efficiency_network": 0.10, "unemployment": -0.10, "centrality": 0.10,
                "refugees_per_capita": -0.05}
NO_NAMED = (("Oslo", 4200), ("Bergen", 1700), ("Trondheim", 1300), ("Stavanger", 1000),
            ("Bærum", 700), ("Kristiansand", 800), ("Drammen", 750), ("Fredrikstad", 650),
            ("Tromsø", 500), ("Sandnes", 500))

# Numeric covariates enter the true hazard relative to these values (the base rate's person).
REFERENCE = {"age": 30.0, "permit_year": 2001.5, "children": 1.0, "health_services": 2.0,
             "start_year": 2015.0}
CATEGORICAL = ("residence", "partner", "language_track", "origin", "permit_year", "education")
PERSON_ORDER = ("male", "female", "age", "children", "health_services", "permit_year",
                "start_year", "deprived_area", "family_reunified", "residence", "partner",
                "language_track", "origin", "education")

PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        name="tiny", named_counts=tuple((f"M{i:02d}", n) for i, n in enumerate(
            [420, 300, 240, 200, 180, 160, 140, 120, 110, 100, 90, 80, 70, 60, 50, 40, 30, 25,
             15, 8], start=1)),
        effect_sd=0.4, base_rate_per_month=0.02,
        individual={"male": 0.4, "age": -0.03}, municipal={"unemployment": -0.2}, top_k=5),
    "tiny-panel": Preset(
        name="tiny-panel", named_counts=tuple((f"K{i:02d}", int(n)) for i, n in enumerate(
            np.round(450 * 0.92 ** np.arange(40)).astype(int), start=1)),
        effect_sd=0.35, old_sd=0.2, base_rate_per_month=0.02, panel_years=(2001, 2008),
        year_sd=0.8, individual={"male": 0.4, "age": -0.03}, municipal={"unemployment": -0.3},
        top_k=3),
    "no-2012-2018": Preset(
        name="no-2012-2018", n_small=346, named_counts=NO_NAMED, small_range=(5, 400),
        total=45000, effect_sd=0.25, alpha=2.0, base_rate_per_month=np.log(2) / 36.0**2,
        mover_share=0.05, persons="no", composition_sd=0.3, individual=NO_INDIVIDUAL,
        municipal=NO_MUNICIPAL, municipal_binary=("efficiency_network",),
        education_share=(0.30, 0.25), outcome_labels=("work", "education")),
}


NAMES = ("tiny", "dk-1999-2005", "no-2012-2018")
"""Every preset's name (``dk-1999-2005`` is built from the bundled facts when asked for)."""
PERIOD_PRESETS = ("dk-two-periods",)
"""Presets measured in several periods (``simulate`` only: ``study`` fits one period)."""
OUTCOME_NAMES = ("tiny-outcomes", "dk-outcomes")
"""Presets with competing outcomes (:mod:`munirank.simulation.outcomes`; ``simulate`` only)."""


def preset(name: str) -> Preset:
    """Return the named preset (the module docstring lists them)."""
    if name in ("dk-1999-2005", "dk-two-periods"):
        dk = seed_facts()["dk_2006"]
        base = Preset(name=name, n_small=199, named_counts=akf_counts(), total=dk["spells_total"],
                      time_unit="weeks", individual=DK_INDIVIDUAL, municipal=DK_MUNICIPAL,
                      calibrated=True, composition_sd=2.0, effect_sd=0.4,
                      register_columns=("permit_week",),
                      mover_share=dk["movers_share_approx"])
        if name == "dk-two-periods":  # two measurements, each half the register
            return replace(base, scale=0.5, periods=("2007", "2009"), period_rho=0.8,
                           absent_first=3)
        return base
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; known: "
                         f"{', '.join(NAMES + PERIOD_PRESETS + OUTCOME_NAMES)}",
                         option="--preset")
    return PRESETS[name]


def _pick(levels: list[str], probs: list[float], n: int,
          rng: np.random.Generator) -> pd.Categorical:
    """Categorical draws (integer codes: fast and small at a million persons)."""
    return pd.Categorical.from_codes(rng.choice(len(levels), n, p=probs), levels)


def _cut(codes: np.ndarray, levels: list[str]) -> pd.Categorical:
    return pd.Categorical.from_codes(codes, levels)


def dk_persons(comp: np.ndarray, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """Persons of the Danish register and their follow-up in months.

    ``comp`` is each person's municipal composition shift: municipalities differ in how many
    of their refugees live in deprived areas, take the slowest language track, are older or
    come from Africa (AKF's covariates explain most between-municipality variation).
    """
    n = len(comp)
    years = np.array(list(DK_PERMIT_YEARS))
    permit_year = rng.choice(years, n, p=np.array(list(DK_PERMIT_YEARS.values())))
    fraction = rng.random(n)  # of the permit year gone by at the permit
    permit_time = permit_year + fraction
    track = 0.8 * comp + rng.normal(size=n)
    africa = rng.random(n) < expit(-1.1 + 0.6 * comp)
    other = rng.choice([0, 2, 3, 4], n, p=[0.53, 0.2, 0.16, 0.11])
    df = pd.DataFrame({
        "male": rng.binomial(1, 11815 / 23563, n),
        "age": np.clip(rng.normal(31 + 2.0 * comp, 8), 18, 64).round(),
        "children": rng.poisson(1.1, n),
        "health_services": rng.poisson(2.0, n),
        "permit_year": permit_year,
        "permit_week": np.minimum(np.floor(fraction * 52.18) + 1, 52).astype(int),
        "deprived_area": rng.binomial(1, expit(-0.9 + 1.0 * comp)),
        "residence": _pick(["refugee", "family_refugee", "family_other"], [0.51, 0.25, 0.24],
                           n, rng),
        "partner": _pick(["none", "immigrant", "danish"], [0.45, 0.4, 0.15], n, rng),
        "language_track": _cut(np.where(track > 0.9, 0, np.where(track < -0.45, 2, 1)),
                               ["1", "2", "3"]),
        "origin": _cut(np.where(africa, 1, other),
                       ["middle_east", "africa", "former_yugoslavia", "asia", "other"]),
    })
    return df, (DK_END_OF_FOLLOW_UP - permit_time) * 12.0


def no_persons(comp: np.ndarray, rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """Introduction-programme participants (Norway) and their follow-up in months."""
    n = len(comp)
    start = 2012 + 7 * rng.random(n)
    edu = 0.7 * comp + rng.normal(size=n)
    df = pd.DataFrame({
        "female": rng.binomial(1, 0.5, n),
        "age": np.clip(rng.normal(30 + 1.5 * comp, 8), 18, 55).round(),
        "children": rng.poisson(1.2, n),
        "start_year": np.floor(start).astype(int),
        "family_reunified": rng.binomial(1, 0.3, n),
        "education": _cut(np.select([edu > 1.1, edu > 0.2, edu < -1.0], [0, 1, 3], 2),
                          ["none", "primary", "secondary", "higher"]),
    })
    return df, (2020.0 - start) * 12.0


PERSON_GENERATORS = {"dk": dk_persons, "no": no_persons}


def person_table(p: Preset, comp: np.ndarray,
                 rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray]:
    """Persons (one row each) and follow-up in months, from the preset's generator."""
    return PERSON_GENERATORS[p.persons](comp * p.composition_sd, rng)


def individual_columns(p: Preset) -> tuple[list[str], list[str]]:
    """The individual covariate columns of a preset and which of them are categorical."""
    names = sorted({k.split("[")[0] for k in p.individual}, key=PERSON_ORDER.index)
    return names, [n for n in names if n in CATEGORICAL]


_RAW_SCALES = {"unemployment": (6.0, 2.0), "third_country_share": (4.0, 2.0),
               "integration_share": (0.5, 0.2), "skilled_jobs_share": (40.0, 8.0),
               "jobs_per_capita": (0.45, 0.08), "centrality": (3.0, 1.5),
               "refugees_per_capita": (1.0, 0.4)}


def _small_counts(n_small: int, rest: int, lo: int, hi: int,
                  rng: np.random.Generator) -> np.ndarray:
    if not n_small * lo <= rest <= n_small * hi:  # else the loop below never ends
        raise InputError(f"{rest} spells cannot be spread over {n_small} small municipalities "
                         f"of {lo} to {hi} spells each; ask for fewer spells or more "
                         "municipalities")
    w = rng.lognormal(0.0, 0.8, n_small)
    x = np.clip(np.floor(w * rest / w.sum()), lo, hi)
    while (diff := int(rest - x.sum())) != 0:  # spread the rounding remainder, within bounds
        room = np.flatnonzero(x < hi if diff > 0 else x > lo)
        idx = rng.choice(room, size=min(abs(diff), len(room)), replace=False)
        x[idx] += np.sign(diff)
    return x.astype(int)


def municipality_counts(p: Preset, rng: np.random.Generator) -> pd.Series:
    """Spells per municipality: named ones exact, small ones absorbing the rest of ``total``.

    ``scale`` multiplies every count (and the total); the set of municipalities stays fixed.
    """
    counts = {k: max(round(v * p.scale), 1) for k, v in p.named_counts}
    if p.n_small:
        lo, hi = (max(round(b * p.scale), 1) for b in p.small_range)
        if p.total is None:
            small = rng.integers(lo, hi + 1, size=p.n_small)
        else:
            rest = round(p.total * p.scale) - sum(counts.values())
            small = _small_counts(p.n_small, rest, lo, hi, rng)
        counts.update({f"Small {i:03d}": int(n) for i, n in enumerate(small, start=1)})
    return pd.Series(counts, dtype=int)


def draw_effects(p: Preset, n: int, rng: np.random.Generator) -> np.ndarray:
    """True municipality effects u_m: Normal or Student-t (nu = 4, scaled to sd effect_sd)."""
    if p.effect_dist == "student_t":
        return p.effect_sd * rng.standard_t(4, n) / np.sqrt(2.0)  # unit variance at nu = 4
    if p.effect_dist != "normal":
        raise InputError(f"unknown effect distribution {p.effect_dist!r}; known: normal, "
                         "student_t", option="--effect-dist")
    return p.effect_sd * rng.normal(size=n)


def municipal_table(names: list[str], counts: np.ndarray, p: Preset,
                    rng: np.random.Generator) -> pd.DataFrame:
    """Municipal covariates on plausible raw scales (percent, per inhabitant, 0/1)."""
    z = pd.DataFrame(rng.normal(size=(len(names), len(p.municipal))), columns=list(p.municipal),
                     index=pd.Index(names, name="municipality"))
    raw = z.copy()
    for c in z:
        if c in p.municipal_binary:  # larger, more central municipalities join networks more
            size = (np.log(counts) - np.log(counts).mean()) / np.log(counts).std()
            lean = z.get("centrality", 0.0) * 0.6 + 0.4 * size
            raw[c] = rng.binomial(1, expit(-0.8 + lean)).astype(int)
        else:
            m, s = _RAW_SCALES.get(c, (0.0, 1.0))
            raw[c] = (m + s * z[c]).round(4)
    return raw


def municipal_eta(municipal: pd.DataFrame, p: Preset) -> np.ndarray:
    """True municipal part of the log hazard: gamma per SD (per unit for 0/1 columns)."""
    eta = np.zeros(len(municipal))
    for c, g in p.municipal.items():
        x = municipal[c].to_numpy(float)
        x = x - x.mean()
        eta += g * (x if c in p.municipal_binary else x / x.std())
    return eta


def linear_predictor(df: pd.DataFrame, coefs: dict[str, float]) -> np.ndarray:
    """Individual part of the true log hazard."""
    eta = np.zeros(len(df))
    for key, b in coefs.items():
        if "[" in key:
            var, level = key[:-1].split("[")
            col = df[var]
            if not isinstance(col.dtype, pd.CategoricalDtype):
                col = col.astype(str)
            eta += b * (col == level).to_numpy()
        else:
            eta += b * (df[key].to_numpy(float) - REFERENCE.get(key, 0.0))
    return eta


def covariate_truth(municipal: pd.DataFrame, p: Preset) -> pd.DataFrame:
    """True log hazard ratios per covariate, per unit and per SD (over municipalities)."""
    rows = [{"covariate": k, "kind": "individual", "true_log_hr_per_unit": b}
            for k, b in p.individual.items()]
    for c, g in p.municipal.items():
        sd = float(municipal[c].std(ddof=0))
        per_unit = g if c in p.municipal_binary else g / sd
        rows.append({"covariate": c, "kind": "municipal", "true_log_hr_per_unit": per_unit,
                     "sd": sd, "true_log_hr_per_sd": per_unit * sd})
    return pd.DataFrame(rows)
