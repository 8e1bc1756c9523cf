r"""Reanalyse a published observed-minus-expected ranking (``munirank reanalyse``).

A published table gives per municipality an effect in months (observed - expected duration,
negative = faster), significance stars (or p-values, or standard errors), the number of spells
and the share completed. No micro-data are needed.

Standard errors
---------------
Where a row has a standard error, it is used; where it has a two-sided p-value, the standard
error is :math:`se_m = |e_m| / \Phi^{-1}(1 - p_m/2)`. Otherwise it is *inferred*: the
standard error of a duration effect shrinks with the number of completed spells,

.. math:: \log se_m \sim N(\log\kappa - \tfrac12 \log E_m,\ \omega^2),
          \qquad E_m = n_m \cdot \mathrm{completed}_m / 100,

so :math:`se_m \approx \kappa / \sqrt{E_m}` up to a multiplicative deviation of size
:math:`\omega` (the design effect of the publisher's covariate model differs between
municipalities). The stars say in which interval :math:`[z_{lo}, z_{hi})` of
:math:`|z| = |e_m| / se_m` the published test fell (none: [0, 1.28), * [1.28, 1.64),
** [1.64, 1.96), *** [1.96, inf) for p < 0.20, 0.10, 0.05). Since :math:`e_m` is observed,
a star bin is an interval for the standard error itself,

.. math:: \log|e_m| - \log z_{hi} < \log se_m \le \log|e_m| - \log z_{lo}.

**Choice.** Each inferred :math:`\log se_m` is a latent parameter with the normal prior above,
*restricted* to its star interval (sampled through an interval transform: logistic when both
ends are finite, exp from the finite end otherwise). The joint density of the latent and the
published bin is :math:`N(\log se_m)\,1[\log se_m \in I_m]`, so integrating the latent out
gives exactly the interval-censored (probit) likelihood of the stars,

.. math:: P(\mathrm{bin}_m \mid \kappa, \omega) =
          \Phi\Big(\frac{U_m - \mu_m}{\omega}\Big) - \Phi\Big(\frac{L_m - \mu_m}{\omega}\Big),
          \qquad \mu_m = \log\kappa - \tfrac12\log E_m .

This is the smooth version of the hard constraint: a hard constraint
(:math:`\omega = 0`) would make the likelihood of :math:`\kappa` flat with cliffs, and on the
AKF table infeasible (København's ** and Odense's *** cannot both hold for one
:math:`\kappa`). :math:`\omega` is estimated, so stars that disagree with
:math:`\kappa/\sqrt{E_m}` widen :math:`\omega` instead of breaking the fit, and the
uncertainty in :math:`\kappa` and :math:`\omega` propagates to every :math:`se_m` and so to
the effects. Rows with a known standard error inform :math:`\kappa, \omega` through the
same normal (as data).

Effects
-------
.. math:: e_m \sim N(\theta_m, se_m^2), \quad \theta_m = \mu + \tau z_m,\ z_m \sim N(0, 1)

(non-centred). Priors: :math:`\kappa \sim \mathrm{LogNormal}(\log 15, 1)` months,
:math:`\omega \sim \mathrm{HalfNormal}(0.5)`, :math:`\mu \sim N(0, 2)`,
:math:`\tau \sim \mathrm{HalfNormal}(5)`. Ranks are computed draw by draw on
:math:`\theta` (rank 1 = most negative = fastest).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pymc as pm
import pytensor.tensor as pt
import xarray as xr
from scipy import stats

from munirank.checking import diagnostics
from munirank.errors import EXIT_OK, EXIT_UNCONVERGED, InputError
from munirank.input.read import data_hash, read_table
from munirank.input.spec import SamplingSpec
from munirank.model.sampling import sample_posterior
from munirank.output import destinations, files
from munirank.posterior import ranks as rk

STAR_P = (0.20, 0.10, 0.05)  # p below these: *, **, ***
Z_EDGES = np.concatenate([[0.0], stats.norm.ppf(1 - np.array(STAR_P) / 2), [np.inf]])
DEFAULT_COLUMNS = {"municipality": "municipality", "effect": "effect_months", "stars": "stars",
                   "p": "p_value", "se": "se", "n_spells": "n_spells",
                   "completed_pct": "completed_pct", "rank": "rank",
                   "observed": "observed_months", "expected": "expected_months"}
REQUIRED = ("municipality", "effect", "n_spells", "completed_pct")
GATED = ["kappa", "omega", "mu", "tau", "theta", "se"]
ROUNDING_TOLERANCE = 0.0015  # three published decimals: |o - e - effect| <= 3 * 0.0005
STAR_CHECK_MIN = 0.1


@dataclass(frozen=True)
class ReanalysisResult:
    """What :func:`reanalyse` produced (the same content as its output folder)."""

    out: Path
    municipalities: pd.DataFrame
    checks: pd.DataFrame
    kappa: dict[str, Any]
    diagnostics: dict[str, Any]
    tree: xr.DataTree

    @property
    def converged(self) -> bool:
        """Whether the run passed the convergence gate."""
        return bool(self.diagnostics["converged"])


# --- reading and validating ---------------------------------------------------------------

def _resolve_columns(df: pd.DataFrame, columns: dict[str, str] | None,
                     file: str) -> dict[str, str]:
    """Map roles to column names; explicitly named columns must exist."""
    unknown = set(columns or {}) - set(DEFAULT_COLUMNS)
    if unknown:
        raise InputError(f"unknown column roles {sorted(unknown)}; use {list(DEFAULT_COLUMNS)}")
    given = {k: v for k, v in (columns or {}).items() if v}
    for role, name in given.items():
        if name not in df.columns:
            raise InputError(f"no column {name!r} (given for {role}); columns are "
                             f"{list(df.columns)}", file=file, column=name)
    roles = {**{r: c for r, c in DEFAULT_COLUMNS.items() if c in df.columns}, **given}
    for role in REQUIRED:
        if role not in roles:
            raise InputError(f"missing column for {role} (name it with --col-"
                             f"{role.replace('_', '-')})", file=file,
                             column=DEFAULT_COLUMNS[role])
    if not {"stars", "p", "se"} & set(roles):
        raise InputError("need stars, p-values or standard errors (--col-stars, --col-p, "
                         "--col-se)", file=file)
    return roles


def _numeric(df: pd.DataFrame, col: str, file: str, *, required: bool,
             valid: Any = None, what: str = "") -> np.ndarray:
    raw = df[col]
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() & (raw.notna() | required)
    if valid is not None:
        bad |= values.notna() & ~valid(values)
    if bad.any():
        rows = (np.flatnonzero(bad.to_numpy()) + 1).tolist()
        raise InputError(f"not a number{what}", file=file, column=col, rows=rows)
    return values.to_numpy(float)


def star_counts(stars: pd.Series, *, file: str = "table", column: str = "stars") -> np.ndarray:
    """Number of stars per row (empty or missing = 0), or InputError for other text.

    Examples
    --------
    >>> star_counts(pd.Series(["***", None, "*", ""])).tolist()
    [3, 0, 1, 0]
    """
    text = stars.fillna("").astype(str).str.strip()
    ok = text.str.fullmatch(r"\*{0,3}")
    if not ok.all():
        rows = (np.flatnonzero(~ok.to_numpy()) + 1).tolist()
        raise InputError("stars must be '', '*', '**' or '***'", file=file, column=column,
                         rows=rows)
    return text.str.len().to_numpy(int)


def prepare_table(df: pd.DataFrame, columns: dict[str, str] | None = None, *,
                  file: str = "table") -> pd.DataFrame:
    """Validate a published table and return it in canonical form.

    Parameters
    ----------
    df : pandas.DataFrame
        The table as read.
    columns : dict, optional
        Role -> column name (roles: see ``DEFAULT_COLUMNS``).
    file : str
        Named in error messages.

    Returns
    -------
    pandas.DataFrame
        Columns ``municipality, effect, n_spells, completed_pct, events`` and, where given,
        ``stars, p, se, rank, observed, expected``; in the table's row order.

    Raises
    ------
    InputError
        Missing column, non-numeric or out-of-range value, duplicate municipality.
    """
    roles = _resolve_columns(df, columns, file)
    out = pd.DataFrame({"municipality": df[roles["municipality"]].astype(str).str.strip()})
    dup = out["municipality"].duplicated(keep=False)
    if dup.any():
        raise InputError("duplicate municipality", file=file, column=roles["municipality"],
                         rows=(np.flatnonzero(dup.to_numpy()) + 1).tolist())
    specs = {"effect": (True, None, ""), "n_spells": (True, lambda v: v > 0, " > 0"),
             "completed_pct": (True, lambda v: (v > 0) & (v <= 100), " in (0, 100]"),
             "p": (False, lambda v: (v > 0) & (v <= 1), " in (0, 1]"),
             "se": (False, lambda v: v > 0, " > 0"), "rank": (False, None, ""),
             "observed": (False, None, ""), "expected": (False, None, "")}
    for role, (required, valid, what) in specs.items():
        if role in roles:
            out[role] = _numeric(df, roles[role], file, required=required, valid=valid,
                                 what=what)
    if "stars" in roles:
        out["stars"] = star_counts(df[roles["stars"]], file=file, column=roles["stars"])
    out["events"] = out["n_spells"] * out["completed_pct"] / 100
    return out.reset_index(drop=True)


# --- standard errors and star bins -------------------------------------------------------

def se_from_p(effect: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Standard error from a two-sided p-value: |e| / Phi^-1(1 - p/2) (NaN where undefined).

    Examples
    --------
    >>> se_from_p(np.array([1.96]), np.array([0.05])).round(3).tolist()
    [1.0]
    """
    z = stats.norm.ppf(1 - np.asarray(p, float) / 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        se = np.abs(effect) / z
    return np.where(np.isfinite(se) & (se > 0), se, np.nan)


def star_bins(effect: np.ndarray, stars: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Interval (lower, upper] for log se implied by each row's star bin.

    ``log|e| - log z_hi < log se <= log|e| - log z_lo``; infinite ends where the bin is
    open, and (-inf, inf) where the effect is 0 (no information).
    """
    stars = np.asarray(stars, int)
    with np.errstate(divide="ignore"):
        log_e = np.log(np.abs(effect))
        lower = log_e - np.log(Z_EDGES[stars + 1])
        upper = log_e - np.log(Z_EDGES[stars])
    none = ~np.isfinite(log_e)
    return np.where(none, -np.inf, lower), np.where(none, np.inf, upper)


def stars_from_z(z: np.ndarray) -> np.ndarray:
    """Stars (0-3) of a two-sided test with statistic z."""
    return np.searchsorted(Z_EDGES[1:-1], np.abs(z), side="right")


def se_sources(table: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Known standard errors (NaN where to be inferred) and the boolean ``se_inferred``."""
    se = np.full(len(table), np.nan)
    if "p" in table:
        se = se_from_p(table["effect"].to_numpy(), table["p"].to_numpy())
    if "se" in table:
        se = np.where(table["se"].notna(), table["se"], se)
    return se, np.isnan(se)


# --- consistency checks --------------------------------------------------------------------

def _check_rows(table: pd.DataFrame, name: str, value: Any, expected: Any, flag: Any,
                note: str) -> pd.DataFrame:
    return pd.DataFrame({"check": name, "row": np.arange(1, len(table) + 1),
                         "municipality": table["municipality"], "value": value,
                         "expected": expected, "flag": flag, "note": note})


def table_checks(table: pd.DataFrame) -> pd.DataFrame:
    """Checks of the table against itself: effect = observed - expected, rank = effect order.

    Returns
    -------
    pandas.DataFrame
        One row per check and municipality: ``check, row, municipality, value, expected,
        flag, note``.
    """
    parts = []
    if {"observed", "expected"} <= set(table):
        oe = (table["observed"] - table["expected"]).round(6)
        parts.append(_check_rows(table, "effect_vs_observed_minus_expected", table["effect"],
                                 oe, (table["effect"] - oe).abs() > ROUNDING_TOLERANCE,
                                 f"tolerance {ROUNDING_TOLERANCE} (rounding)"))
    if "rank" in table:
        order = stats.rankdata(table["effect"], method="min")
        parts.append(_check_rows(table, "rank_vs_effect_order", table["rank"], order,
                                 table["rank"] != order, "rank 1 = most negative effect"))
    if {"p", "stars"} <= set(table):
        from_p = stars_from_z(stats.norm.ppf(1 - table["p"] / 2))
        parts.append(_check_rows(table, "stars_vs_p", table["stars"], from_p,
                                 table["p"].notna() & (table["stars"] != from_p), ""))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def star_checks(table: pd.DataFrame, kappa: np.ndarray, omega: np.ndarray) -> pd.DataFrame:
    """Stars vs the inferred standard errors, given posterior draws of kappa and omega.

    ``value`` = published stars, ``expected`` = stars at ``se = kappa_median / sqrt(E)``;
    flagged when the posterior probability of the published bin (probit formula in the
    module docstring, averaged over draws) is below ``STAR_CHECK_MIN``.
    """
    if "stars" not in table:
        return pd.DataFrame()
    lower, upper = star_bins(table["effect"].to_numpy(), table["stars"].to_numpy())
    mu = np.log(kappa)[:, None] - 0.5 * np.log(table["events"].to_numpy())[None, :]
    sd = np.asarray(omega)[:, None]
    prob = (stats.norm.cdf((upper - mu) / sd) - stats.norm.cdf((lower - mu) / sd)).mean(0)
    z = table["effect"].abs() * np.sqrt(table["events"]) / np.median(kappa)
    out = _check_rows(table, "stars_vs_inferred_se", table["stars"], stars_from_z(z),
                      prob < STAR_CHECK_MIN, "")
    out["note"] = [f"P(published stars | kappa, omega) = {p:.3f}" for p in prob]
    return out


# --- model -----------------------------------------------------------------------------------

def _interval_latent(raw: pt.TensorVariable, lower: np.ndarray,
                     upper: np.ndarray) -> tuple[pt.TensorVariable, pt.TensorVariable]:
    """Map unconstrained ``raw`` into (lower, upper]; return value and log Jacobian."""
    lo_f, up_f = np.isfinite(lower), np.isfinite(upper)
    lo, up = np.where(lo_f, lower, 0.0), np.where(up_f, upper, 0.0)
    width = np.where(lo_f & up_f, up - lo, 1.0)
    both = lo + width * pt.sigmoid(raw)
    log_jac_both = np.log(width) - pt.softplus(-raw) - pt.softplus(raw)
    value = pt.switch(lo_f & up_f, both, pt.switch(lo_f, lo + pt.exp(raw),
                                                   pt.switch(up_f, up - pt.exp(raw), raw)))
    log_jac = pt.switch(lo_f & up_f, log_jac_both,
                        pt.switch(lo_f | up_f, raw, pt.zeros_like(raw)))
    return value, log_jac


def create_published_model(table: pd.DataFrame) -> pm.Model:
    """The joint model of the module docstring for a prepared table (see ``prepare_table``)."""
    se_known, inferred = se_sources(table)
    stars = table["stars"].to_numpy() if "stars" in table else np.zeros(len(table), int)
    lower, upper = star_bins(table["effect"].to_numpy(), stars)
    if "stars" not in table:
        lower, upper = np.full(len(table), -np.inf), np.full(len(table), np.inf)
    idx_inf, idx_known = np.flatnonzero(inferred), np.flatnonzero(~inferred)
    coords = {"municipality": table["municipality"].tolist(),
              "inferred": table["municipality"].to_numpy()[idx_inf].tolist()}
    log_events = np.log(table["events"].to_numpy())
    with pm.Model(coords=coords) as model:
        kappa = pm.LogNormal("kappa", mu=np.log(15.0), sigma=1.0)
        omega = pm.HalfNormal("omega", sigma=0.5)
        mu = pm.Normal("mu", 0.0, 2.0)
        tau = pm.HalfNormal("tau", sigma=5.0)
        z = pm.Normal("z", 0.0, 1.0, dims="municipality")
        theta = pm.Deterministic("theta", mu + tau * z, dims="municipality")
        centre = pt.log(kappa) - 0.5 * log_events
        log_se = pt.as_tensor(np.log(np.where(inferred, 1.0, se_known)))
        if idx_inf.size:
            raw = pm.Flat("log_se_raw", dims="inferred")
            value, log_jac = _interval_latent(raw, lower[idx_inf], upper[idx_inf])
            prior = pm.logp(pm.Normal.dist(centre[idx_inf], omega), value)
            pm.Potential("log_se_prior", (prior + log_jac).sum())
            log_se = pt.set_subtensor(log_se[idx_inf], value)
        if idx_known.size:
            pm.Normal("log_se_known", centre[idx_known], omega,
                      observed=np.log(se_known[idx_known]))
        se = pm.Deterministic("se", pt.exp(log_se), dims="municipality")
        pm.Normal("effect", theta, se, observed=table["effect"].to_numpy(),
                  dims="municipality")
    return model


def sample_published(model: pm.Model, *, draws: int, tune: int, chains: int, seed: int,
                     sampler: str = "nutpie", progressbar: bool = True) -> xr.DataTree:
    """NUTS draws of the reported parameters (nutpie by default), through :mod:`munirank.fit`."""
    spec = SamplingSpec(draws=draws, tune=tune, chains=chains, seed=seed, sampler=sampler,
                        target_accept=0.9)
    tree, _ = sample_posterior(model, spec, progressbar=progressbar, var_names=[*GATED, "z"])
    return tree


# --- summaries -------------------------------------------------------------------------------

def municipality_table(posterior: xr.Dataset, table: pd.DataFrame, *, ci_prob: float,
                       top_k: int = 10) -> pd.DataFrame:
    """municipalities.csv: shrunken effect, ranks, published figures side by side."""
    theta = posterior["theta"]
    ranks = rk.rank_draws(theta)
    parts = [rk.summarise_effect(theta, "effect_months", ci_prob=ci_prob),
             (theta < 0).mean(rk.SAMPLE_DIMS).rename("p_faster"),
             rk.summarise_ranks(ranks, top_k=top_k, ci_prob=ci_prob),
             shrinkage(posterior["se"], posterior["tau"]),
             posterior["se"].mean(rk.SAMPLE_DIMS).rename("se_mean")]
    out = xr.merge(parts, compat="override").to_dataframe().reset_index()
    out = out.drop(columns=[c for c in out.columns if c not in {
        "municipality", *[v for p in parts for v in _names(p)]}])
    pub = table.set_index("municipality")
    m = out["municipality"]
    out.insert(1, "n_spells", pub.loc[m, "n_spells"].round().astype(int).to_numpy())
    out["published_rank"] = pub.loc[m, "rank"].to_numpy() if "rank" in pub else np.nan
    out["published_stars"] = (pub.loc[m, "stars"].map(lambda s: "*" * s).to_numpy()
                              if "stars" in pub else "")
    out["published_effect_months"] = pub.loc[m, "effect"].to_numpy()
    out["se_inferred"] = pd.Series(se_sources(table)[1], index=pub.index).loc[m].to_numpy()
    out = out.sort_values(["rank_mean", "municipality"], kind="stable").reset_index(drop=True)
    out.attrs.update(ci_prob=ci_prob, top_k=top_k)
    return out


def shrinkage(se: xr.DataArray, tau: xr.DataArray) -> xr.DataArray:
    """Posterior mean of the normal-normal weight on the pooled mean, se^2 / (se^2 + tau^2).

    0 = the published effect is taken as it is, 1 = it is replaced by the pooled mean.
    """
    return (se**2 / (se**2 + tau**2)).mean(rk.SAMPLE_DIMS).rename("shrinkage")


def _names(part: xr.Dataset | xr.DataArray) -> list[str]:
    return list(part.data_vars) if isinstance(part, xr.Dataset) else [str(part.name)]


def kappa_summary(posterior: xr.Dataset, inferred: np.ndarray, *, ci_prob: float) -> dict:
    """Posterior mean, median and interval of kappa, omega, mu and tau."""
    tail = (1 - ci_prob) / 2
    out: dict[str, Any] = {"ci_prob": ci_prob, "n_se_inferred": int(inferred.sum()),
                           "n_se_given": int((~inferred).sum()),
                           "meaning": "se_m = kappa / sqrt(n_spells * completed_pct / 100), "
                                      "times exp(N(0, omega^2))"}
    for name in ("kappa", "omega", "mu", "tau"):
        d = posterior[name].to_numpy().ravel()
        lo, hi = np.quantile(d, [tail, 1 - tail])
        out[name] = {"mean": float(d.mean()), "median": float(np.median(d)),
                     "lo": float(lo), "hi": float(hi)}
    return out


def closing_note(result: ReanalysisResult) -> str:
    """Plain-language summary: kappa, top/bottom ten agreement, widest/narrowest ranks."""
    t, k, d = result.municipalities, result.kappa["kappa"], result.diagnostics
    n, ci = len(t), round(100 * result.kappa["ci_prob"])
    pub = t["published_rank"] if t["published_rank"].notna().all() else \
        stats.rankdata(t["published_effect_months"], method="min")
    top = int((t.loc[pub <= 10, "p_top10"] > 0.5).sum())
    bottom = int((t.loc[pub > n - 10, "p_bottom10"] > 0.5).sum())
    width = t["rank_hi"] - t["rank_lo"]
    flagged = result.checks[result.checks["flag"]] if len(result.checks) else result.checks
    checks = "; ".join(f"{r.check}: {r.municipality} ({r.value:g} vs {r.expected:g})"
                       for r in flagged.itertuples()) or "none flagged"
    return "\n".join([
        f"kappa = {k['median']:.2f} months ({ci}% interval {k['lo']:.2f}-{k['hi']:.2f}); "
        f"se inferred for {result.kappa['n_se_inferred']} of {n} municipalities",
        f"published top ten with p_top10 > 0.5: {top} of 10; published bottom ten with "
        f"p_bottom10 > 0.5: {bottom} of 10",
        f"widest rank interval{_extreme_intervals(t, width, width.max())}; "
        f"narrowest{_extreme_intervals(t, width, width.min())}",
        f"R-hat max {d['rhat_max']:.3f}, bulk ESS min {d['ess_bulk_min']:.0f}, divergences "
        f"{d['divergences']}, converged {d['converged']}",
        f"checks: {checks}"])


def _extreme_intervals(t: pd.DataFrame, width: pd.Series, value: float) -> str:
    rows = t[width == value]
    names = ", ".join(f"{r.municipality} {r.rank_lo:.0f}-{r.rank_hi:.0f}"
                      for r in rows.itertuples())
    return f" (width {value:.0f}): {names}"


# --- API and command -----------------------------------------------------------------------

def reanalyse(table: str | Path | pd.DataFrame, *, out: str | Path,
              columns: dict[str, str] | None = None, encoding: str = "utf-8",
              draws: int = 2000, tune: int = 1000, chains: int = 4, seed: int = 1,
              ci_prob: float = 0.9, sampler: str = "nutpie",
              progressbar: bool = True, overwrite: bool = False) -> ReanalysisResult:
    """Reanalyse a published observed-minus-expected table (``munirank reanalyse``).

    Parameters
    ----------
    table : str, Path or pandas.DataFrame
        The published table (.csv, .parquet, .dta, .sas7bdat) or a DataFrame.
    out : str or Path
        Output folder: municipalities.csv, checks.csv, kappa.json, diagnostics.json,
        run.json; written only when complete.
    columns : dict, optional
        Role -> column name for roles municipality, effect, stars, p, se, n_spells,
        completed_pct, rank, observed, expected (defaults in ``DEFAULT_COLUMNS``).
    encoding : str
        Text encoding of the file.
    draws, tune, chains, seed : int
        Sampling settings. ``omega`` mixes slowest (it sets the scale of the latent
        standard errors); 4 x 2000 draws pass the gate on the AKF table.
    ci_prob : float
        Probability of every interval.
    sampler : str
        ``nutpie`` (default) or ``pymc``.
    progressbar : bool
        Show sampling progress.
    overwrite : bool
        Write into a folder that holds files munirank did not write (they are kept; see
        :mod:`munirank.output.destinations`).

    Returns
    -------
    ReanalysisResult
        Tables, kappa, diagnostics and the posterior. Check ``converged``.

    Raises
    ------
    InputError
        Missing or bad columns, or an ``out`` munirank may not replace; nothing is written.

    Examples
    --------
    >>> from importlib.resources import files
    >>> akf = files("munirank") / "bundled" / "akf2006_table4.csv"
    >>> result = reanalyse(akf, out="akf")                     # doctest: +SKIP
    >>> print(closing_note(result))                           # doctest: +SKIP
    """
    t0 = time.perf_counter()
    is_frame = isinstance(table, pd.DataFrame)
    inputs = () if is_frame else (Path(table),)
    destinations.claim_folder(out, overwrite=overwrite, inputs=inputs)
    file = "<DataFrame>" if is_frame else str(table)
    mcol = (columns or {}).get("municipality") or DEFAULT_COLUMNS["municipality"]
    df = table if is_frame else read_table(table, encoding=encoding, str_columns=(mcol,))
    prepared = prepare_table(df, columns, file=file)
    model = create_published_model(prepared)
    tree = sample_published(model, draws=draws, tune=tune, chains=chains, seed=seed,
                            sampler=sampler, progressbar=progressbar)
    post = tree["posterior"].dataset
    diag = diagnostics.convergence(tree, var_names=GATED)
    theta = diagnostics.by_variable(post, ["theta"])
    rhat = float(np.max(theta["rhat"]["theta"]))
    ess = float(np.min(theta["ess_bulk"]["theta"]))
    diag.update(rhat_max_effects=rhat, ess_bulk_min_effects=ess, sampler=sampler,
                method="nuts", chains=chains, draws=draws, tune=tune,
                wall_seconds=round(time.perf_counter() - t0, 2))
    inferred = se_sources(prepared)[1]
    kappa = kappa_summary(post, inferred, ci_prob=ci_prob)
    municipalities = municipality_table(post, prepared, ci_prob=ci_prob)
    municipalities["converged"] = diag["converged"]
    checks = pd.concat([table_checks(prepared), star_checks(
        prepared, post["kappa"].to_numpy().ravel(), post["omega"].to_numpy().ravel())],
        ignore_index=True)
    run = {"command": " ".join(sys.argv), "seed": seed, "table_file": file,
           "table_hash": None if is_frame else data_hash(table), "columns": columns or {},
           "versions": files.versions(), "wall_seconds": diag["wall_seconds"]}
    with destinations.atomic_folder(out, command="reanalyse", overwrite=overwrite,
                                    inputs=inputs) as tmp:
        files.write_csv(municipalities, tmp / "municipalities.csv")
        files.write_csv(checks, tmp / "checks.csv")
        files.write_json(kappa, tmp / "kappa.json")
        files.write_json(diag, tmp / "diagnostics.json")
        files.write_json(run, tmp / "run.json")
    return ReanalysisResult(out=Path(out), municipalities=municipalities, checks=checks,
                            kappa=kappa, diagnostics=diag, tree=tree)


def reanalyse_command(args: argparse.Namespace) -> int:
    """``munirank reanalyse TABLE --out DIR``: run, print the closing note, return exit code."""
    columns = {role: getattr(args, f"col_{role}") for role in
               ("municipality", "effect", "stars", "p", "se", "n_spells", "completed_pct",
                "rank") if getattr(args, f"col_{role}", None)}
    options = {k: getattr(args, k) for k in ("draws", "tune", "chains", "seed", "ci_prob",
                                             "sampler") if getattr(args, k, None) is not None}
    result = reanalyse(args.table, out=args.out, columns=columns, encoding=args.encoding,
                       progressbar=not args.quiet, overwrite=args.overwrite, **options)
    print(closing_note(result))
    print(f"-> {result.out}")
    if not result.converged:
        print(f"munirank: warning: NOT CONVERGED ({result.diagnostics['criteria']}); outputs "
              "are flagged converged=false", file=sys.stderr)
        return EXIT_OK if args.allow_unconverged else EXIT_UNCONVERGED
    return EXIT_OK


def simulate_table(n: int = 72, *, kappa: float = 10.0, omega: float = 0.15,
                   mu: float = 0.0, tau: float = 1.5, seed: int = 1) -> pd.DataFrame:
    """A published-style table with known truth (``true_effect``, ``true_se`` columns).

    Spell counts and completion shares are drawn like the AKF table's; stars are computed
    from the true standard errors; ranks from the effects.
    """
    rng = np.random.default_rng(seed)
    n_spells = np.round(80 * np.exp(rng.exponential(0.8, n))).astype(int)
    completed = np.clip(np.round(rng.normal(35, 12, n)), 10, 90)
    events = n_spells * completed / 100
    se = kappa / np.sqrt(events) * np.exp(omega * rng.normal(size=n))
    theta = mu + tau * rng.normal(size=n)
    effect = np.round(theta + se * rng.normal(size=n), 3)
    return pd.DataFrame({
        "rank": stats.rankdata(effect, method="min").astype(int),
        "municipality": [f"M{i:03d}" for i in range(n)], "effect_months": effect,
        "stars": ["*" * s for s in stars_from_z(effect / se)], "n_spells": n_spells,
        "completed_pct": completed, "true_effect": theta, "true_se": se})
