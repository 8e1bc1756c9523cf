r"""Model checking and alternatives: LOO, rank and prior sensitivity (``munirank check``).

On the same episodes the chosen model (the spec's ``[model]``) and its alternatives are
fitted, each changing one thing: the baseline (exponential, Weibull, log-logistic,
log-normal, piecewise exponential; :mod:`munirank.model.build`), the municipality effects
(normal vs Student-t) and the shrinkage target (without municipal covariates). Then:

- **LOO** (``loo.csv``): PSIS-LOO per model from the pointwise log-likelihood of each episode
  (a density in months, so that every baseline is on the same scale), computed block by
  block of episodes (:mod:`munirank.checking.loo`), compared with
  :func:`arviz_stats.compare` (stacking weights); ``n_pareto_k_gt_0_7`` counts episodes whose
  Pareto :math:`\hat k > 0.7` (their LOO estimate is unreliable).
- **Rank sensitivity** (``rank_sensitivity.csv``): per alternative, the Spearman correlation of
  mean ranks with the chosen model, the overlap of the top-k sets by mean rank and the
  largest absolute change in :math:`P(\text{top } k)` with its municipality. Effects are in
  months (RMST to the horizon) for every baseline: closed form for Weibull and exponential,
  quadrature for the others (:func:`munirank.posterior.quadrature.duration_effects_quadrature`).
- **Prior sensitivity** (``check.json``): power-scaling (:func:`arviz_stats.psense_summary`,
  Kallioinen et al. 2024) of the chosen model for ``alpha``, ``sigma``, ``beta`` and
  ``gamma``. The power-scaled prior is the joint prior of the top-level parameters
  (``alpha``, ``beta0``, ``beta``, ``gamma``, ``sigma``); the hierarchical
  :math:`\tilde u_m \sim N(0, 1)` is part of the model, not of the prior being questioned.
  Values above 0.05 flag sensitivity.
- **Posterior predictive shares** (``completion.csv``): per municipality, predicted against
  observed share completed within 12, 24 and 48 months
  (:func:`munirank.checking.predictive.completion_table`).

Disclosure: the pointwise log-likelihood (draws x episodes) is never held whole, only block
by block in memory; files hold aggregates (elpd, se, counts of :math:`\hat k`),
per-municipality summaries, and counts below ``min_cell`` are blank.
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import arviz_stats as azs
import numpy as np
import pandas as pd
import xarray as xr
from scipy import stats

from munirank.checking import diagnostics, predictive, schedule
from munirank.checking.loo import model_loo
from munirank.errors import InputError
from munirank.input.cells import fit_only
from munirank.input.episodes import load_episodes
from munirank.input.spec import BASELINES, ModelSpec, Spec, load_spec
from munirank.model.build import PARAMETERS, create_model, crude_log_rate
from munirank.model.sampling import sample_posterior
from munirank.output import destinations, files
from munirank.posterior import ranks as rk
from munirank.posterior.effects import duration_effects
from munirank.posterior.quadrature import duration_effects_quadrature
from munirank.threads import one_blas_thread

PARETO_K_BAD = 0.7
LOO_MIN_DRAWS = 25
"""Draws (chains x draws) PSIS-LOO needs at least: it smooths a tail of a fifth of the draws
(for fewer than 225 effective ones) and refuses a tail of fewer than 5."""
LOO_COLUMNS = ["model", "elpd_loo", "se", "p_loo", "elpd_diff", "dse", "weight",
               "n_pareto_k_gt_0_7", "converged", "baseline", "group_effect",
               "municipal_covariates"]


@dataclass(frozen=True)
class Variant:
    """One model of the comparison: a ModelSpec and whether municipal covariates enter."""

    name: str
    model: ModelSpec
    municipal: bool = True


@dataclass
class VariantFit:
    """What is kept of one fitted variant (aggregates; the pointwise arrays are dropped)."""

    variant: Variant
    loo: Any
    n_pareto_k_bad: int
    diagnostics: dict[str, Any]
    ranks: pd.DataFrame
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)
    """Seconds of its stages: model, compile, draw, diagnostics, loo, effects_ranks."""
    cpu_seconds: float = float("nan")
    """CPU seconds (every thread) of the process that fitted it, while it did: a model's own
    cost, which its seconds are not where two processes share the cores."""
    started: float = float("nan")
    """When its fit began (``time.time()``: the same clock in either process)."""


def variants(spec: Spec, *, has_municipal: bool,
             names: tuple[str, ...] | None = None) -> list[Variant]:
    """The chosen model first, then alternatives that each change one thing.

    Parameters
    ----------
    spec : Spec
        Its ``model`` is the chosen model.
    has_municipal : bool
        Add the variant without municipal covariates.
    names : tuple of str, optional
        Keep only these alternatives (the chosen model is always kept).

    Returns
    -------
    list of Variant

    Raises
    ------
    InputError
        If ``names`` holds a name that is not one of these models (``--models``).
    """
    chosen = spec.model
    out = [Variant(chosen.baseline, chosen)]
    out += [Variant(b, replace(chosen, baseline=b)) for b in BASELINES if b != chosen.baseline]
    other = "normal" if chosen.group_effect == "student_t" else "student_t"
    out.append(Variant(f"{chosen.baseline}_{other}", replace(chosen, group_effect=other)))
    if has_municipal:
        out.append(Variant(f"{chosen.baseline}_no_municipal", chosen, municipal=False))
    if names:
        unknown = [n for n in names if n not in {v.name for v in out}]
        if unknown:
            raise InputError(f"unknown model(s) {', '.join(map(repr, unknown))}; known: "
                             f"{', '.join(v.name for v in out[1:])}", option="--models")
        out = [out[0], *[v for v in out[1:] if v.name in names]]
    return out


def effects_for(posterior: xr.Dataset, episodes: xr.Dataset, baseline: str) -> xr.Dataset:
    """Effect draws in months for any baseline (closed form where there is one)."""
    if baseline == "weibull":
        return duration_effects(posterior, episodes)
    if baseline == "exponential":
        return duration_effects(posterior.assign(alpha=xr.ones_like(posterior["beta0"])),
                                episodes)
    return duration_effects_quadrature(posterior, episodes, baseline=baseline)


@one_blas_thread
def fit_variant(episodes: xr.Dataset, variant: Variant, spec: Spec, *,
                keep_loglik: bool = False) -> tuple[VariantFit, xr.DataTree]:
    """Fit one variant; return its aggregates and its posterior tree.

    With ``keep_loglik`` the tree also holds a ``log_likelihood`` group (for power-scaling of
    the likelihood): the log-likelihood summed over episodes, per draw.
    """
    clock = [time.perf_counter()]
    cpu0 = time.process_time()
    started = time.time()

    def lap() -> float:
        clock.append(time.perf_counter())
        return clock[-1] - clock[-2]

    eps = episodes if variant.municipal else episodes.isel(municipal_covariate=[])
    model = create_model(eps, variant.model)
    timings = {"model_seconds": lap()}
    tree, sampled = sample_posterior(model, spec.sampling, progressbar=False)
    lap()
    timings.update((k, sampled[k]) for k in ("compile_seconds", "draw_seconds") if k in sampled)
    posterior = tree["posterior"].dataset
    diag = diagnostics.convergence(tree, var_names=list(PARAMETERS))
    timings["diagnostics_seconds"] = lap()
    loo = model_loo(posterior, eps, baseline=variant.model.baseline)
    diag["loo_warnings"] = loo.warnings
    timings["loo_seconds"] = lap()
    derived = effects_for(posterior, eps, variant.model.baseline)
    k = spec.ranking.top_k
    summary = rk.summarise_ranks(rk.rank_draws(derived["effect_months"]), top_k=k,
                                 ci_prob=spec.sampling.ci_prob)
    table = summary[["rank_mean", f"p_top{k}"]].to_dataframe()
    table["effect_months_mean"] = derived["effect_months"].mean(rk.SAMPLE_DIMS).to_numpy()
    timings["effects_ranks_seconds"] = lap()
    groups = {"posterior": posterior}
    if keep_loglik:
        groups["log_likelihood"] = xr.Dataset({"loglik": loo.loglik_draws})
    out = VariantFit(variant, loo.loo, int((loo.loo.pareto_k > PARETO_K_BAD).sum()), diag,
                     table, clock[-1] - clock[0], timings, time.process_time() - cpu0, started)
    return out, xr.DataTree.from_dict(groups)


def loo_table(fits: list[VariantFit]) -> pd.DataFrame:
    """The loo.csv table, best model first."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Pareto-k warnings are counted in the table instead
        comp = azs.compare({f.variant.name: f.loo for f in fits}, round_to="none")
    by_name = {f.variant.name: f for f in fits}
    rows = []
    for name, row in comp.iterrows():
        f = by_name[name]
        rows.append({"model": name, "elpd_loo": row["elpd"], "se": row["se"], "p_loo": row["p"],
                     "elpd_diff": row["elpd_diff"], "dse": row["dse"], "weight": row["weight"],
                     "n_pareto_k_gt_0_7": f.n_pareto_k_bad,
                     "converged": f.diagnostics["converged"],
                     "baseline": f.variant.model.baseline,
                     "group_effect": f.variant.model.group_effect,
                     "municipal_covariates": f.variant.municipal})
    return pd.DataFrame(rows, columns=LOO_COLUMNS)


def rank_sensitivity(chosen: pd.DataFrame, others: dict[str, pd.DataFrame], *,
                     top_k: int) -> pd.DataFrame:
    """Per alternative: Spearman of mean ranks, top-k overlap, largest change in P(top k).

    Parameters
    ----------
    chosen : pandas.DataFrame
        ``rank_mean`` and ``p_top{k}`` per municipality (index) of the chosen model.
    others : dict of str to pandas.DataFrame
        The same for each alternative.
    top_k : int
        Size of the top set.

    Returns
    -------
    pandas.DataFrame
        ``model``, ``spearman_rank_mean``, ``top{k}_overlap``, ``max_abs_change_p_top{k}``,
        ``municipality``, ``p_top{k}_chosen``, ``p_top{k}_alternative``.
    """
    p = f"p_top{top_k}"
    top = set(chosen.nsmallest(top_k, "rank_mean").index)
    rows = []
    for name, other in others.items():
        other = other.reindex(chosen.index)
        change = (other[p] - chosen[p]).abs()
        worst = change.idxmax()
        rows.append({
            "model": name,
            "spearman_rank_mean": stats.spearmanr(chosen["rank_mean"], other["rank_mean"])[0],
            f"top{top_k}_overlap": len(top & set(other.nsmallest(top_k, "rank_mean").index)),
            f"max_abs_change_{p}": change.max(), "municipality": worst,
            f"{p}_chosen": chosen.loc[worst, p], f"{p}_alternative": other.loc[worst, p],
        })
    return pd.DataFrame(rows)


def log_prior(posterior: xr.Dataset, spec: ModelSpec, episodes: xr.Dataset) -> xr.Dataset:
    """Log prior density of the top-level parameters per draw (the power-scaled prior)."""
    p = spec.priors
    sd = rk.SAMPLE_DIMS
    out = {
        "beta0": stats.norm.logpdf(posterior["beta0"], crude_log_rate(episodes), p.beta0_sigma),
        "beta": stats.norm.logpdf(posterior["beta"], 0, p.beta_sigma).sum(-1),
        "gamma": stats.norm.logpdf(posterior["gamma"], 0, p.gamma_sigma).sum(-1),
        "sigma": stats.halfnorm.logpdf(posterior["sigma"], scale=p.sigma_sigma),
    }
    if "alpha" in posterior:
        out["alpha"] = stats.lognorm.logpdf(posterior["alpha"], s=p.alpha_sigma,
                                            scale=np.exp(p.alpha_mu))
    return xr.Dataset({k: (sd, np.asarray(v)) for k, v in out.items()},
                      coords={d: posterior[d] for d in sd})


def prior_sensitivity(tree: xr.DataTree, spec: ModelSpec,
                      episodes: xr.Dataset) -> dict[str, dict[str, Any]]:
    """Power-scaling sensitivity of alpha, sigma, beta and gamma (prior and likelihood).

    Returns
    -------
    dict
        ``{"alpha": {"prior": .., "likelihood": .., "diagnosis": ..}, "beta[male]": ...}``.
    """
    posterior = tree["posterior"].dataset
    data = tree.copy()
    data["log_prior"] = xr.DataTree(log_prior(posterior, spec, episodes))
    names = [v for v in ("alpha", "sigma", "beta", "gamma") if v in posterior
             and posterior[v].size]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table = azs.psense_summary(data, var_names=names)
    return {str(i): {"prior": float(r["prior"]), "likelihood": float(r["likelihood"]),
                     "diagnosis": str(r["diagnosis"])} for i, r in table.iterrows()}


@one_blas_thread
def run_checks(data: str | Path, *, spec: str | Path | Spec, out: str | Path,
               models: tuple[str, ...] | None = None, log: Any = None,
               overwrite: bool = False, processes: int | None = None) -> dict[str, Any]:
    """Fit the chosen model and its alternatives; write the check folder (``munirank check``).

    Parameters
    ----------
    data : str or Path
        Spell file.
    spec : str, Path or Spec
        The chosen model's spec (its ``[sampling]`` is used for every model).
    out : str or Path
        Output folder: loo.csv, rank_sensitivity.csv, ranks_by_model.csv, completion.csv,
        check.json.
    models : tuple of str, optional
        Alternatives to fit (names as in :func:`variants`); default all.
    log : file-like, optional
        Where to print progress (one line per model).
    overwrite : bool
        Write into a folder that holds files munirank did not write (they are kept; see
        :mod:`munirank.output.destinations`).
    processes : int, optional
        1: every model in this process; 2: every other alternative in a second process
        (:mod:`munirank.checking.schedule`); default 2 where cores and memory allow. The
        results are the same either way.

    Returns
    -------
    dict
        ``loo`` and ``rank_sensitivity`` tables and the ``check`` summary written to
        check.json.
    """
    inputs = (Path(data),) if isinstance(spec, Spec) else (Path(data), Path(spec))
    destinations.claim_folder(out, overwrite=overwrite, inputs=inputs)
    spec_obj = spec if isinstance(spec, Spec) else load_spec(spec)
    fit_only(spec_obj, "check", file="<in memory>" if isinstance(spec, Spec) else str(spec))
    total = spec_obj.sampling.draws * spec_obj.sampling.chains
    if total < LOO_MIN_DRAWS:
        raise InputError(f"check needs at least {LOO_MIN_DRAWS} draws in all (draws x chains) "
                         f"for PSIS-LOO, not {total}", option="--draws")
    t0, epoch0 = time.perf_counter(), time.time()
    episodes = load_episodes(data, spec_obj)
    t_read = time.perf_counter()
    todo = variants(spec_obj, has_municipal=episodes.sizes["municipal_covariate"] > 0,
                    names=models)
    # the chosen model and some alternatives here; the rest, about as costly, in a second one
    n_processes = processes or schedule.processes(len(todo) - 1, episodes.sizes["episode"],
                                                  total)
    other = (schedule.second_share([v.model.baseline for v in todo])
             if n_processes == 2 else [])
    by_index: dict[int, VariantFit] = {}
    chosen = todo[0].model
    stages: dict[str, float] = {}
    with schedule.second_process(episodes, spec_obj, [todo[i] for i in other]) as result:
        for i, variant in enumerate(todo):
            if i in other:
                continue
            by_index[i], tree = fit_variant(episodes, variant, spec_obj, keep_loglik=i == 0)
            _log_fit(by_index[i], log)
            if i == 0:  # the chosen model's own stages now, while the second process fits
                psense, completion = _chosen_stages(tree, chosen, episodes, spec_obj, stages)
            del tree
        for j, i in enumerate(other):
            by_index[i] = result(j)
            _log_fit(by_index[i], log)
    fits = [by_index[i] for i in range(len(todo))]
    t_fits = time.perf_counter()
    k = spec_obj.ranking.top_k
    loo = loo_table(fits)
    sens = rank_sensitivity(fits[0].ranks, {f.variant.name: f.ranks for f in fits[1:]},
                            top_k=k)
    t_compare = time.perf_counter()
    by_model = pd.concat({f.variant.name: f.ranks for f in fits}, names=["model"]).reset_index()
    check = {
        "chosen_model": todo[0].name,
        "models": {f.variant.name: {**{k2: v for k2, v in f.diagnostics.items()},
                                    "seconds": round(f.seconds, 1),
                                    "cpu_seconds": round(f.cpu_seconds, 1),
                                    "process": 2 if i in other else 1,
                                    "start_seconds": round(f.started - epoch0, 1),
                                    "timings": {k2: round(v, 2) for k2, v in f.timings.items()}}
                   for i, f in enumerate(fits)},
        "prior_sensitivity": psense,
        "completion_consistent_share": predictive.completion_summary(completion),
        "sampling": {"draws": spec_obj.sampling.draws, "tune": spec_obj.sampling.tuning_steps,
                     "chains": spec_obj.sampling.chains, "seed": spec_obj.sampling.seed,
                     "sampler": spec_obj.sampling.sampler, "method": spec_obj.sampling.method},
        "n_episodes": int(episodes.sizes["episode"]),
        "n_municipalities": int(episodes.sizes["municipality"]),
        "pareto_k_threshold": PARETO_K_BAD,
        "processes": n_processes,
        "timings": {k2: round(v, 2) for k2, v in (
            ("read_seconds", t_read - t0),
            ("models_seconds", t_fits - t_read - sum(stages.values())),
            ("compare_seconds", t_compare - t_fits), *stages.items())},
    }
    with destinations.atomic_folder(out, command="check", overwrite=overwrite,
                                    inputs=inputs) as tmp:
        files.write_csv(loo, tmp / "loo.csv")
        files.write_csv(sens, tmp / "rank_sensitivity.csv")
        files.write_csv(by_model, tmp / "ranks_by_model.csv")
        files.write_csv(completion, tmp / "completion.csv")
        files.write_json(check, tmp / "check.json")
    return {"loo": loo, "rank_sensitivity": sens, "check": check}


def _chosen_stages(tree: xr.DataTree, chosen: ModelSpec, episodes: xr.Dataset, spec: Spec,
                   seconds: dict[str, float]) -> tuple[dict[str, Any], pd.DataFrame]:
    """Prior sensitivity and the completion table of the chosen model; their seconds.

    Run right after the chosen model's fit: then they overlap the second process's models
    instead of following every model, and its posterior is let go before the next fit.
    """
    t0 = time.perf_counter()
    psense = prior_sensitivity(tree, chosen, episodes)
    t1 = time.perf_counter()
    completion = predictive.completion_table(tree["posterior"].dataset, episodes,
                                             baseline=chosen.baseline,
                                             ci_prob=spec.sampling.ci_prob,
                                             min_cell=spec.disclosure.min_cell)
    seconds["prior_sensitivity_seconds"] = t1 - t0
    seconds["completion_seconds"] = time.perf_counter() - t1
    return psense, completion


def _log_fit(fit: VariantFit, log: Any) -> None:
    if log is not None:
        print(f"  {fit.variant.name}: {fit.seconds:.0f} s, converged "
              f"{fit.diagnostics['converged']}, k>0.7: {fit.n_pareto_k_bad}", file=log)


def check_command(args: argparse.Namespace) -> int:
    """``munirank check``: run :func:`run_checks` from parsed arguments; print the LOO table."""
    destinations.claim_folder(args.out, overwrite=args.overwrite, inputs=(args.data, args.spec))
    spec = load_spec(args.spec).with_sampling(
        draws=args.draws, tune=args.tune, chains=args.chains, seed=args.seed,
        sampler=args.sampler, method=args.method, ci_prob=args.ci_prob)
    if args.min_cell is not None:
        spec = replace(spec, disclosure=replace(spec.disclosure, min_cell=args.min_cell))
    models = tuple(m.strip() for m in (getattr(args, "models", None) or "").split(",")
                   if m.strip()) or None
    result = run_checks(args.data, spec=spec, out=args.out, models=models, log=sys.stdout,
                        overwrite=args.overwrite)
    with pd.option_context("display.width", 160, "display.max_columns", 20):
        print(result["loo"].round(2).to_string(index=False))
        print(result["rank_sensitivity"].round(3).to_string(index=False))
    print(f"-> {args.out}")
    return 0
