"""Typed, frozen specifications loaded from TOML; every default lives here.

A spec says which columns hold what (``[data]``), which covariates enter the model
(``[covariates]``), the horizon of the duration effect (``[outcome]``), the model and its
priors (``[model]``), how to sample (``[sampling]``) and how to rank (``[ranking]``);
``[registers]`` says how ``munirank episodes`` builds the episode table from register
extracts with dates (``fit`` does not read it). Paths in the spec are relative to the spec
file.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from munirank.errors import InputError

TIME_UNITS_PER_MONTH = {"months": 1.0, "weeks": 52.0 / 12.0, "days": 365.25 / 12.0}
SAMPLERS = ("nutpie", "pymc")
DEFAULT_TUNE = {"nutpie": 300, "pymc": 1000}
"""Tuning steps per chain when the spec and the command line do not set them.

nutpie's own default, 300: its adaptation settles within a few hundred steps. Measured
(4 x 1000 draws, the package's convergence gate R-hat <= 1.01, bulk ESS >= 400, no
divergences):

- dk-1999-2005, seeds 1-6 of the fit: 300 steps gave R-hat max 1.0049-1.0085, minimum bulk
  ESS of the effects 5,519-6,673 and no divergences; 500 steps 1.0057-1.0079, 6,145-6,544;
- the ``tiny`` preset (60 municipalities of 500 down to 10 spells), 50 registers: 50 of 50
  converged at 300 steps as at 500 and 1,000 (R-hat max median 1.005; minimum bulk ESS
  median 3,887 against 4,120 at 1,000), with the same coverage of the credible sets
  (docs/study/statements-2026-12-01/summary-tune300.txt).

PyMC's NUTS keeps its own default, 1,000."""
METHODS = ("nuts", "laplace")
DROPPED = {
    ("sampling.method", "pathfinder"):
        "pathfinder is no longer offered (pymc-extras, its only implementation for PyMC, "
        "requires pymc < 6.4); use laplace, a nested Laplace approximation that gives a fast "
        "approximate posterior for very large registers, or nuts",
    ("sampling.sampler", "numpyro"):
        "numpyro is no longer offered (it runs JAX, and munirank's likelihood is a "
        "numba-compiled PyTensor Op with no JAX implementation); use nutpie (the default) "
        "or pymc",
}
"""Values munirank once offered, each with the one line that says what to use instead."""
ADAPTATIONS = ("auto", "diag", "low_rank")
AUTO_ADAPTATION = "diag"
"""``adaptation = "auto"`` is nutpie's diagonal mass matrix, at every size.

With the municipality effects centred where the data dominate (:data:`PARAMETRISATIONS`),
the posterior has no strong linear correlations left for a low-rank mass matrix to follow.
Measured on dk-1999-2005 scaled to 1,000,000 spells and 400 municipalities (2 x 300 draws,
300 tuning steps): minimum bulk ESS of the effects 969 with diag; low_rank diverged in every
draw (step size 0.07). Before that parametrisation (all effects non-centred) low_rank had
been needed: ESS 14 with diag, 266 with low_rank at 200,000 spells."""
GROUP_EFFECTS = ("normal", "zerosum", "student_t")
PARAMETRISATIONS = ("auto", "partial", "switch", "non_centred", "centred")
"""How the sampler sees the municipality effects (the model is the same): ``auto`` (=
``partial``) centres each municipality's effect in proportion to the data's share of the
information about it; ``switch`` centres it fully or not at all (munirank 0.1's ``auto``); see
:func:`munirank.model.build.centring_weights`."""
BASELINES = ("weibull", "exponential", "loglogistic", "lognormal", "piecewise_exponential")
PERIOD_STRUCTURES = ("shared", "ar1")
"""How a municipality's effects in the periods of ``[data] period`` are tied together:
``shared`` (a shared effect plus a deviation per period with its own SD: exchangeable),
``ar1`` (a stationary AR(1) over the ordered periods); :mod:`munirank.model.periods`."""
MAX_PERIODS = 20
CROSSWALK_LEVELS = ("new", "old")
"""Units ``munirank episodes`` reports episodes on when a crosswalk is given: the municipalities
after the reforms (``new``), or those the registers recorded (``old``, with the new code of
each episode in an extra column)."""


@dataclass(frozen=True)
class DataSpec:
    """Where the columns are and how time is measured."""

    group: str = "municipality"
    time: str = "stop"
    event: str = "event"
    entry: str | None = None
    time_unit: str = "months"
    municipal_table: str | None = None
    encoding: str = "utf-8"
    # the municipal table keyed by municipality and calendar year (the year column's name);
    # the episode table then has a ``year`` column (``[registers] split_years``)
    municipal_year: str | None = None
    # municipal reforms: a CSV of (old code, new code, reform date), read by ``episodes``
    crosswalk: str | None = None
    crosswalk_columns: tuple[str, ...] = ("old", "new", "date")
    crosswalk_level: str = "new"  # one of CROSSWALK_LEVELS
    # the episode table's calendar-year column (episodes split at 1 January): each piece
    # reads the municipal table's row of its municipality and year (needs municipal_year)
    year: str | None = None
    # the column numbering the unsplit episodes of a table split into pieces: counts and
    # effects count episodes, not pieces (``munirank episodes`` writes ``episode``)
    episode: str | None = None
    # the column with each row's new municipality: the group's (old) municipalities are
    # nested in these, and these are ranked (``munirank episodes`` writes ``<group>_new``)
    parent: str | None = None
    # the column with each row's measurement period (a report year, an arrival cohort):
    # effects per municipality and period, rank changes between periods (model.periods)
    period: str | None = None
    # competing outcomes: the column naming the outcome each event reached (blank on censored
    # rows); one cause-specific Weibull per outcome (:mod:`munirank.model.outcomes`)
    outcome: str | None = None
    # the outcomes' labels in the order of the outputs (default: most events first); a label
    # listed here without events is refused
    outcomes: tuple[str, ...] = ()


MAX_OUTCOMES = 5
"""At most this many competing outcomes (``[data] outcome``)."""


@dataclass(frozen=True)
class CovariateSpec:
    """Individual covariates (numeric or categorical) and municipal covariates."""

    individual: tuple[str, ...] = ()
    categorical: tuple[str, ...] = ()
    municipal: tuple[str, ...] = ()


@dataclass(frozen=True)
class OutcomeSpec:
    """The horizon (months) up to which restricted mean durations are computed."""

    horizon_months: float = 48.0


@dataclass(frozen=True)
class PriorSpec:
    """Priors on the standardised scale (see DESIGN.md section 2).

    alpha ~ LogNormal(alpha_mu, alpha_sigma); beta ~ Normal(0, beta_sigma);
    gamma ~ Normal(0, gamma_sigma); sigma ~ HalfNormal(sigma_sigma);
    beta0 ~ Normal(crude log event rate, beta0_sigma); Student-t effects have nu degrees
    of freedom; with ``[data] parent``, the old municipalities' SD around their new
    municipality's effect sigma_old ~ HalfNormal(sigma_old_sigma).
    """

    alpha_mu: float = 0.0
    alpha_sigma: float = 0.5
    beta_sigma: float = 1.0
    gamma_sigma: float = 1.0
    sigma_sigma: float = 0.5
    beta0_sigma: float = 1.0
    nu: float = 4.0
    sigma_old_sigma: float = 0.5  # sigma_old ~ HalfNormal: old municipalities within a new one
    # with [data] period: the SD of a municipality's period deviations ("shared") or its
    # effects' SD is sigma and rho ~ Uniform(-1, 1) ("ar1"); see munirank.model.periods
    sigma_period_sigma: float = 0.5
    lkj_eta: float = 2.0  # competing outcomes: LKJ(eta) prior on the effects' correlation


@dataclass(frozen=True)
class ModelSpec:
    """Baseline hazard, municipality-effect distribution and priors."""

    baseline: str = "weibull"
    group_effect: str = "normal"
    parametrisation: str = "auto"  # of normal/student_t effects: PARAMETRISATIONS
    periods: str = "shared"  # with [data] period: PERIOD_STRUCTURES (munirank.model.periods)
    priors: PriorSpec = field(default_factory=PriorSpec)


@dataclass(frozen=True)
class SamplingSpec:
    """How to sample the posterior."""

    draws: int = 1000
    tune: int | None = None  # default: DEFAULT_TUNE of the sampler
    chains: int = 4
    sampler: str = "nutpie"
    method: str = "nuts"
    seed: int = 1
    ci_prob: float = 0.9
    # 0.8: on dk-1999-2005 (seeds 1-2) 0.6-0.7 took 7-9 leapfrog steps per draw instead of
    # 15, but the minimum bulk ESS of the effects fell to 2,600-3,700 from 6,300-6,700
    target_accept: float = 0.8
    adaptation: str = "auto"  # nutpie's mass matrix: diag, low_rank, auto (= diag)

    @property
    def tuning_steps(self) -> int:
        """``tune``, or the sampler's default (:data:`DEFAULT_TUNE`)."""
        return self.tune if self.tune is not None else DEFAULT_TUNE.get(self.sampler, 1000)


@dataclass(frozen=True)
class RankingSpec:
    """Ranking settings: size of the top/bottom set and an optional named subset."""

    top_k: int = 10
    subset: tuple[str, ...] = ()
    pairwise: tuple[str, ...] = ()  # fit writes pairwise.csv: P(row faster than column)


@dataclass(frozen=True)
class DisclosureSpec:
    """Counts below ``min_cell`` are blanked in every output."""

    min_cell: int = 5


@dataclass(frozen=True)
class RegistersSpec:
    """Register extracts with dates: the user's columns and the rules of ``munirank episodes``.

    The person table has ``id``, ``arrival`` (time zero), ``event_date`` (blank = no event),
    the ``end_dates`` (emigration, death, end of data; the earliest ends observation) and the
    covariates; the residence history has ``id``, ``municipality``, ``from_date`` and
    ``to_date`` (blank = still living there). See :mod:`munirank.input.registers`.
    """

    id: str = "person_id"
    arrival: str = "arrival"
    event_date: str = "event_date"
    end_dates: tuple[str, ...] = ()
    end_of_data: str | None = None   # one date (YYYY-MM-DD) ending everyone's observation
    municipality: str = "municipality"
    from_date: str = "from"
    to_date: str = "to"
    to_inclusive: bool = False       # to dates are the last day lived there
    follow_up_months: float | None = None  # censor follow-up here (not [outcome]'s horizon)
    split_years: bool = False        # one episode per calendar year (column ``year``)
    covariates: tuple[str, ...] | None = None  # person columns carried; None = all others


@dataclass(frozen=True)
class Spec:
    """A whole analysis specification."""

    data: DataSpec = field(default_factory=DataSpec)
    covariates: CovariateSpec = field(default_factory=CovariateSpec)
    outcome: OutcomeSpec = field(default_factory=OutcomeSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    sampling: SamplingSpec = field(default_factory=SamplingSpec)
    ranking: RankingSpec = field(default_factory=RankingSpec)
    disclosure: DisclosureSpec = field(default_factory=DisclosureSpec)
    registers: RegistersSpec = field(default_factory=RegistersSpec)
    base_dir: Path = field(default=Path("."), compare=False)

    def resolve(self, path: str | None) -> Path | None:
        """Return ``path`` relative to the spec file's folder (None stays None)."""
        if path is None:
            return None
        p = Path(path)
        return p if p.is_absolute() else self.base_dir / p

    def with_sampling(self, **changes: Any) -> Spec:
        """Return a copy with sampling settings replaced (None values are ignored)."""
        changes = {k: v for k, v in changes.items() if v is not None}
        return replace(self, sampling=replace(self.sampling, **changes))


_SECTIONS = {
    "data": DataSpec,
    "covariates": CovariateSpec,
    "outcome": OutcomeSpec,
    "model": ModelSpec,
    "sampling": SamplingSpec,
    "ranking": RankingSpec,
    "disclosure": DisclosureSpec,
    "registers": RegistersSpec,
}


def _build(cls: type, values: dict[str, Any], where: str, file: str) -> Any:
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise InputError(
                f"unknown spec key; known keys in [{where}] are {sorted(known)}",
                file=file,
                column=f"{where}.{key}",
            )
        if key == "priors" and cls is ModelSpec:
            if not isinstance(value, dict):
                raise InputError("[model.priors] must be a table", file=file, column="model.priors")
            kwargs[key] = _build(PriorSpec, value, "model.priors", file)
        elif isinstance(value, list):
            kwargs[key] = tuple(str(v) for v in value)
        elif isinstance(value, datetime.date):  # a TOML date: kept as written
            kwargs[key] = value.isoformat()
        else:
            kwargs[key] = value
    try:
        return cls(**kwargs)
    except TypeError as err:  # pragma: no cover - dataclass signature mismatch
        raise InputError(str(err), file=file, column=where) from None


def spec_from_dict(values: dict[str, Any], *, base_dir: Path = Path("."),
                   file: str = "spec") -> Spec:
    """Build and check a :class:`Spec` from a parsed TOML mapping.

    Parameters
    ----------
    values : dict
        The TOML document as a mapping of section name to table.
    base_dir : Path
        Folder that relative paths in the spec refer to.
    file : str
        Name used in error messages.

    Returns
    -------
    Spec

    Raises
    ------
    InputError
        On unknown sections or keys and on values out of range.
    """
    sections: dict[str, Any] = {}
    for name, table in values.items():
        if name not in _SECTIONS:
            raise InputError(
                f"unknown spec section; known sections are {sorted(_SECTIONS)}",
                file=file,
                column=f"[{name}]",
            )
        if not isinstance(table, dict):
            raise InputError("must be a table", file=file, column=f"[{name}]")
        sections[name] = _build(_SECTIONS[name], table, name, file)
    spec = Spec(**sections, base_dir=base_dir)
    check_spec(spec, file=file)
    return spec


def check_spec(spec: Spec, *, file: str = "spec") -> None:
    """Raise :class:`InputError` if a spec value is out of range."""
    checks: list[tuple[bool, str, str]] = [
        (spec.data.time_unit in TIME_UNITS_PER_MONTH, "data.time_unit",
         f"must be one of {sorted(TIME_UNITS_PER_MONTH)}"),
        (spec.sampling.sampler in SAMPLERS, "sampling.sampler", f"must be one of {SAMPLERS}"),
        (spec.sampling.method in METHODS, "sampling.method", f"must be one of {METHODS}"),
        (spec.sampling.adaptation in ADAPTATIONS, "sampling.adaptation",
         f"must be one of {ADAPTATIONS}"),
        (spec.model.group_effect in GROUP_EFFECTS, "model.group_effect",
         f"must be one of {GROUP_EFFECTS}"),
        (spec.model.baseline in BASELINES, "model.baseline", f"must be one of {BASELINES}"),
        (spec.model.parametrisation in PARAMETRISATIONS, "model.parametrisation",
         f"must be one of {PARAMETRISATIONS}"),
        (0 < spec.sampling.ci_prob < 1, "sampling.ci_prob", "must lie strictly between 0 and 1"),
        (spec.sampling.draws >= 1, "sampling.draws", "must be at least 1"),
        (spec.sampling.tune is None or spec.sampling.tune >= 0, "sampling.tune",
         "must be at least 0"),
        (spec.sampling.chains >= 1, "sampling.chains", "must be at least 1"),
        (spec.outcome.horizon_months > 0, "outcome.horizon_months", "must be positive"),
        (spec.ranking.top_k >= 1, "ranking.top_k", "must be at least 1"),
        (spec.disclosure.min_cell >= 0, "disclosure.min_cell", "must be at least 0"),
        (set(spec.covariates.categorical) <= set(spec.covariates.individual),
         "covariates.categorical", "must be a subset of covariates.individual"),
        (not (spec.covariates.municipal and spec.data.municipal_table is None),
         "covariates.municipal", "needs data.municipal_table"),
        (spec.data.parent is None or spec.data.parent != spec.data.group, "data.parent",
         "must name another column than data.group (the new municipality of each row)"),
        (spec.data.parent is None or spec.sampling.method != "laplace", "sampling.method",
         "laplace integrates over sigma only: nested municipalities ([data] parent) need "
         "method = \"nuts\""),
        (spec.model.periods in PERIOD_STRUCTURES, "model.periods",
         f"must be one of {PERIOD_STRUCTURES}"),
        (spec.data.period is None or spec.data.period != spec.data.group, "data.period",
         "must name another column than data.group (each row's measurement period)"),
        (spec.model.priors.lkj_eta > 0, "model.priors.lkj_eta", "must be positive"),
        (spec.data.outcome is None or spec.model.group_effect == "normal",
         "model.group_effect", "competing outcomes ([data] outcome) have normal effects "
         "(correlated across outcomes): use group_effect = \"normal\""),
        (spec.data.outcome is None or spec.sampling.method != "laplace", "sampling.method",
         "laplace approximates the single-outcome model only: competing outcomes ([data] "
         "outcome) need method = \"nuts\""),
        (not spec.data.outcomes or spec.data.outcome is not None, "data.outcomes",
         "lists the labels of [data] outcome: set [data] outcome too"),
        (len(spec.data.outcomes) <= MAX_OUTCOMES, "data.outcomes",
         f"at most {MAX_OUTCOMES} competing outcomes"),
        (spec.data.crosswalk_level in CROSSWALK_LEVELS, "data.crosswalk_level",
         f"must be one of {CROSSWALK_LEVELS}"),
        (len(spec.data.crosswalk_columns) == 3, "data.crosswalk_columns",
         "must name three columns: the old code, the new code and the reform date"),
        (spec.registers.follow_up_months is None or spec.registers.follow_up_months > 0,
         "registers.follow_up_months", "must be positive"),
        (isinstance(spec.registers.to_inclusive, bool), "registers.to_inclusive",
         "must be true or false"),
        (isinstance(spec.registers.split_years, bool), "registers.split_years",
         "must be true or false"),
    ]
    for (key, value), message in DROPPED.items():
        section, name = key.split(".")
        if getattr(getattr(spec, section), name) == value:
            raise InputError(message, file=file, column=key)
    for ok, key, message in checks:
        if not ok:
            raise InputError(message, file=file, column=key)
    if spec.data.outcome is not None:  # before the period's: the message names both keys
        from munirank.input.outcomes import check_outcome_keys

        check_outcome_keys(spec, file=file)
    if spec.data.period is not None:
        _check_period_combinations(spec, file)


def _check_period_combinations(spec: Spec, file: str) -> None:
    """Refuse what ``[data] period`` is not combined with (yet): one line, the key named."""
    for key in ("parent", "year", "episode"):
        if getattr(spec.data, key) is not None:
            raise InputError(f"[data] period is not combined with [data] {key} yet (split or "
                             "nested episodes): fit the periods on unsplit episodes",
                             file=file, column=f"data.{key}")
    if spec.sampling.method != "nuts":
        raise InputError("[data] period needs method = \"nuts\" (laplace integrates over "
                         "sigma only)", file=file, column="sampling.method")
    if spec.model.group_effect != "normal":
        raise InputError("[data] period needs group_effect = \"normal\" (the periods' "
                         "effects are built on normal deviations)", file=file,
                         column="model.group_effect")


def load_spec(path: str | Path) -> Spec:
    """Read a SPEC.toml file.

    Parameters
    ----------
    path : str or Path
        The spec file.

    Returns
    -------
    Spec

    Raises
    ------
    InputError
        If the file is missing, is not valid TOML, or holds unknown keys or bad values.

    Examples
    --------
    >>> spec = load_spec("models/minimal.toml")  # doctest: +SKIP
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
        values = tomllib.loads(text)
    except FileNotFoundError:
        raise InputError("spec file not found", file=str(path)) from None
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise InputError(f"not a valid UTF-8 TOML file ({err})", file=str(path)) from None
    return spec_from_dict(values, base_dir=path.parent, file=str(path))


def spec_to_dict(spec: Spec) -> dict[str, Any]:
    """Return the spec as plain TOML-ready data (paths as given, tuples as lists)."""
    out = dataclasses.asdict(spec)
    out.pop("base_dir")
    # what only `munirank episodes` reads is left out at its defaults, so that a spec without
    # it hashes as before it existed
    if spec.registers == RegistersSpec():
        out.pop("registers")
    for key in ("crosswalk_columns", "crosswalk_level"):
        if out["data"][key] == getattr(DataSpec(), key):
            out["data"].pop(key)
    if spec.model.priors.sigma_old_sigma == PriorSpec().sigma_old_sigma:
        out["model"]["priors"].pop("sigma_old_sigma")  # read only with [data] parent
    if spec.model.priors.sigma_period_sigma == PriorSpec().sigma_period_sigma:
        out["model"]["priors"].pop("sigma_period_sigma")  # read only with [data] period
    if spec.model.periods == ModelSpec().periods:
        out["model"].pop("periods")
    if spec.model.priors.lkj_eta == PriorSpec().lkj_eta:
        out["model"]["priors"].pop("lkj_eta")  # read only with [data] outcome
    if not spec.data.outcomes:
        out["data"].pop("outcomes")

    def clean(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items() if x is not None}
        if isinstance(v, tuple):
            return list(v)
        return v

    return clean(out)


def spec_hash(spec: Spec) -> str:
    """A stable SHA-256 of the spec's content (paths as written, not resolved)."""
    return hashlib.sha256(repr(sorted(spec_to_dict(spec).items())).encode()).hexdigest()
