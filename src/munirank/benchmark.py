"""The Bayesian benchmark of a register, end to end (``munirank fit``).

The stages in order: the spec and the episodes (:mod:`munirank.input`), the model and its
posterior (:mod:`munirank.model`), the convergence gate (:mod:`munirank.checking`), effects,
ranks, tables and statements (:mod:`munirank.posterior`), and the output folder, written
completely or not at all (:mod:`munirank.output`).
"""

from __future__ import annotations

import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from munirank.errors import InputError
from munirank.input.read import check_readable
from munirank.input.spec import Spec, load_spec, spec_hash, spec_to_dict
from munirank.output import destinations, files
from munirank.threads import one_blas_thread

if TYPE_CHECKING:  # imported when fit runs, after its inputs passed validation (see fit)
    import pandas as pd
    import xarray as xr


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit` produced (the same content as its output folder)."""

    out: Path
    municipalities: pd.DataFrame
    covariates: pd.DataFrame
    diagnostics: dict[str, Any]
    tree: xr.DataTree
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage (run.json)

    @property
    def converged(self) -> bool:
        """Whether the run passed the convergence gate."""
        return bool(self.diagnostics["converged"])


def command_inputs(data: str | Path, spec: str | Path | Spec) -> tuple[Path, ...]:
    """The files a command reads, which its ``--out`` must not hold."""
    return (Path(data),) if isinstance(spec, Spec) else (Path(data), Path(spec))


def resolve_spec(spec: str | Path | Spec) -> tuple[Spec, str]:
    """The spec (loaded if a file) and the name messages give it."""
    if isinstance(spec, Spec):
        return spec, "<in memory>"
    return load_spec(spec), str(spec)


@one_blas_thread
def fit(data: str | Path, *, spec: str | Path | Spec, out: str | Path,
        draws: int | None = None, tune: int | None = None, chains: int | None = None,
        seed: int | None = None, sampler: str | None = None, method: str | None = None,
        ci_prob: float | None = None, min_cell: int | None = None,
        progressbar: bool = True, overwrite: bool = False) -> FitResult:
    """Fit the partially pooled Weibull model and write the results (``munirank fit``).

    Parameters
    ----------
    data : str or Path
        Spell file (.csv, .parquet, .dta, .sas7bdat).
    spec : str, Path or Spec
        The SPEC.toml file (or a loaded spec).
    out : str or Path
        Output folder: municipalities.csv, covariates.csv, diagnostics.json, posterior.nc,
        run.json. Written only when complete.
    draws, tune, chains, seed, sampler, method, ci_prob : optional
        Override the spec's ``[sampling]`` settings.
    min_cell : int, optional
        Override the spec's ``[disclosure] min_cell``: smaller counts are blanked.
    progressbar : bool
        Show sampling progress.
    overwrite : bool
        Write into a folder that holds files munirank did not write (they are kept; see
        :mod:`munirank.output.destinations`).

    Returns
    -------
    FitResult
        Tables, diagnostics and the posterior tree. Check ``converged``.

    Raises
    ------
    InputError
        On bad data or spec, or an ``out`` munirank may not replace; nothing is written.
    """
    t_start = time.perf_counter()
    inputs = command_inputs(data, spec)
    destinations.claim_folder(out, overwrite=overwrite, inputs=inputs)
    spec_obj, spec_file = _checked_spec(spec, min_cell=min_cell, draws=draws, tune=tune,
                                        chains=chains, seed=seed, sampler=sampler,
                                        method=method, ci_prob=ci_prob)
    check_readable(data)  # the file only: the encoding is the spec's, checked next
    # only now the libraries: a bad spec or a missing file exits without importing them, and
    # bad data without importing PyMC
    from munirank.input import validate
    from munirank.input.episodes import load_episodes

    validate.check_encoding(spec_obj, file=spec_file)
    episodes = load_episodes(data, spec_obj)
    from munirank.checking import predictive

    groups = predictive.survival_groups(episodes, named=spec_obj.ranking.subset)
    km = _observed_curves(episodes, groups, spec_obj)  # the data's part
    t_data = time.perf_counter()
    tree, timing = _sampled(episodes, spec_obj, progressbar=progressbar)
    t_sampled = time.perf_counter()
    results = _summarised(tree, episodes, spec_obj, survival_km=(groups, km))
    t_end = time.perf_counter()
    s = spec_obj.sampling
    results.diagnostics.update(
        sampler=s.sampler, method=s.method, adaptation=s.adaptation, chains=s.chains,
        draws=s.draws, tune=s.tuning_steps, wall_seconds=round(t_end - t_start, 2))
    timings = {"read_validate_seconds": t_data - t_start, **timing,
               "effects_ranks_seconds": t_end - t_sampled, "wall_seconds": t_end - t_start}
    run = _run_record(data, spec_obj, spec_file, episodes, timings)
    with destinations.atomic_folder(out, command="fit", overwrite=overwrite,
                                    inputs=inputs) as tmp:
        _write(tmp, results, spec_obj, run)
    return FitResult(out=Path(out), municipalities=results.municipalities,
                     covariates=results.covariates, diagnostics=results.diagnostics,
                     tree=results.tree, timings=run["timings"])


def _checked_spec(spec: str | Path | Spec, *, min_cell: int | None,
                  **sampling: Any) -> tuple[Spec, str]:
    """The spec with the command line's settings, checked; and its file name."""
    from munirank.input.spec import AUTO_ADAPTATION, check_spec

    spec_obj, spec_file = resolve_spec(spec)
    spec_obj = spec_obj.with_sampling(**sampling)
    if min_cell is not None:
        spec_obj = replace(spec_obj, disclosure=replace(spec_obj.disclosure, min_cell=min_cell))
    check_spec(spec_obj, file=spec_file)
    if spec_obj.model.baseline != "weibull":  # effects and PPC curves are Weibull's here
        raise InputError(f"fit reports the Weibull model; baseline "
                         f"{spec_obj.model.baseline!r} is compared by 'munirank check'",
                         file=spec_file, column="model.baseline")
    if spec_obj.sampling.adaptation == "auto":
        spec_obj = spec_obj.with_sampling(adaptation=AUTO_ADAPTATION)
    return spec_obj, spec_file


def _sampled(episodes: xr.Dataset, spec: Spec, *,
             progressbar: bool) -> tuple[xr.DataTree, dict[str, float]]:
    """The posterior (guarded: nutpie returns truncated draws on Ctrl-C, never used)."""
    from munirank.model.build import create_model
    from munirank.model.sampling import sample_posterior

    model = create_model(episodes, spec.model)
    with files.interruptible():
        return sample_posterior(model, spec.sampling, progressbar=progressbar)


def _observed_curves(episodes: xr.Dataset, groups: list[str], spec: Spec) -> list[pd.DataFrame]:
    """Kaplan-Meier curves, or with competing outcomes Aalen-Johansen ones (checking)."""
    from munirank.checking import predictive

    ci, min_cell = spec.sampling.ci_prob, spec.disclosure.min_cell
    if "outcome" in episodes.dims:
        from munirank.checking import incidence

        return incidence.aalen_johansen_tables(episodes, groups, ci_prob=ci, min_cell=min_cell)
    return predictive.km_tables(episodes, groups, ci_prob=ci, min_cell=min_cell)


@dataclass(frozen=True)
class _Results:
    """What the posterior stage computed from the draws (before anything is written)."""

    tree: xr.DataTree
    derived: xr.Dataset
    diagnostics: dict[str, Any]
    municipalities: pd.DataFrame
    covariates: pd.DataFrame
    survival: pd.DataFrame | None
    old_municipalities: pd.DataFrame | None  # nested ([data] parent): their own effects
    periods: Any = None  # [data] period: posterior.periods.PeriodResults
    extra: dict[str, pd.DataFrame] = field(default_factory=dict)  # more tables, by file name


def _summarised(tree: xr.DataTree, episodes: xr.Dataset, spec: Spec, *,
                survival_km: tuple[list[str], list[pd.DataFrame]]) -> _Results:
    from munirank.checking import diagnostics, predictive
    from munirank.model.build import PARAMETERS
    from munirank.output import disclosure
    from munirank.posterior import tables

    posterior = tree["posterior"].dataset
    if "outcome" in episodes.dims:  # competing outcomes (posterior.outcome_tables)
        return _summarised_outcomes(tree, episodes, spec, survival_km)
    ci, groups_km = spec.sampling.ci_prob, survival_km

    def checks() -> tuple[dict[str, Any], pd.DataFrame]:
        return (diagnostics.convergence(tree, var_names=list(PARAMETERS)),
                predictive.survival_table(posterior, episodes, ci_prob=ci,
                                          groups=groups_km[0], km=groups_km[1],
                                          min_cell=spec.disclosure.min_cell))

    # The convergence statistics and the predictive curves in a second thread while this one
    # computes the effects: both are numpy loops that release the GIL, so on 2 cores the
    # stage takes the longer of the two, not their sum (dk-1999-2005: 2.8 s against 4.3 s,
    # the same numbers). Threads, not processes: the draws are shared, not copied.
    with ThreadPoolExecutor(max_workers=1) as pool:
        checked = pool.submit(checks)
        found = None
        if "period" in episodes.dims:  # measurement periods: per period, and changes
            from munirank.posterior import periods

            found = periods.summarised(posterior, episodes, spec)
            derived = found.derived
        else:
            derived = tables.derived_draws(posterior, episodes, spec)
        result_tree = _result_tree(tree, derived)
        disclosure.check_aggregate(result_tree)
        covariates = tables.covariate_table(posterior, episodes, ci_prob=ci)
        diag, survival = checked.result()
    if found is not None:
        found = periods.with_converged(found, diag["converged"])
    return _Results(
        tree=result_tree, derived=derived, diagnostics=diag, periods=found,
        municipalities=(found.municipalities if found is not None else
                        tables.municipality_table(posterior, derived, episodes, spec,
                                                  converged=diag["converged"])),
        covariates=covariates, survival=survival,
        old_municipalities=tables.old_municipality_table(posterior, derived, episodes, spec))


def _summarised_outcomes(tree: xr.DataTree, episodes: xr.Dataset, spec: Spec,
                         survival_km: tuple[list[str], list[pd.DataFrame]]) -> _Results:
    from munirank.checking import diagnostics, incidence
    from munirank.model.build import PARAMETERS
    from munirank.output import disclosure
    from munirank.posterior import outcome_tables as ot

    posterior = tree["posterior"].dataset
    ci = spec.sampling.ci_prob

    def checks() -> tuple[dict[str, Any], pd.DataFrame]:
        return (diagnostics.convergence(tree, var_names=list(PARAMETERS)),
                incidence.incidence_table(posterior, episodes, groups=survival_km[0],
                                          observed=survival_km[1], ci_prob=ci))

    # as in _summarised: the checks in a second thread while this one computes the effects
    with ThreadPoolExecutor(max_workers=1) as pool:
        checked = pool.submit(checks)
        derived = ot.derived_outcome_draws(posterior, episodes, spec)
        result_tree = _result_tree(tree, derived)
        disclosure.check_aggregate(result_tree)
        diag, incidence_table = checked.result()
    converged = diag["converged"]
    extra = {"outcomes.csv": ot.outcome_table(posterior, derived, episodes, spec,
                                              converged=converged),
             "outcome_correlations.csv": ot.correlation_table(posterior, ci_prob=ci),
             "incidence.csv": incidence_table}
    return _Results(
        tree=result_tree, derived=derived, diagnostics=diag,
        municipalities=ot.combined_table(derived, episodes, spec, converged=converged),
        covariates=ot.covariate_table_outcomes(posterior, episodes, ci_prob=ci),
        survival=None, old_municipalities=None, extra=extra)


def _run_record(data: str | Path, spec: Spec, spec_file: str, episodes: xr.Dataset,
                timings: dict[str, float]) -> dict[str, Any]:
    """run.json: what ran, on what, with which versions, and how long it took."""
    from munirank.input.read import data_hash

    return {"command": " ".join(sys.argv), "seed": spec.sampling.seed, "spec_file": spec_file,
            "spec": spec_to_dict(spec), "spec_hash": spec_hash(spec),
            "data_file": str(data), "data_hash": data_hash(data),
            "municipal_table_hash": (data_hash(spec.resolve(spec.data.municipal_table))
                                     if spec.data.municipal_table else None),
            "versions": files.versions(),
            "timings": {k: round(v, 3) for k, v in timings.items()},
            "n_episodes": int(episodes.sizes["episode"]),
            "n_municipalities": int(episodes.sizes["municipality"])}


def _write(folder: Path, results: _Results, spec: Spec, run: dict[str, Any]) -> None:
    from munirank.posterior import statements, tables

    files.write_csv(results.municipalities, folder / "municipalities.csv")
    files.write_csv(results.covariates, folder / "covariates.csv")
    if results.survival is not None:  # competing outcomes: incidence.csv instead
        files.write_csv(results.survival, folder / "survival.csv")
    for name, table in results.extra.items():
        files.write_csv(table, folder / name)
    subset = tables.subset_table(results.derived, spec)
    if subset is not None:
        files.write_csv(subset, folder / "ranks_subset.csv")
    if results.old_municipalities is not None:
        files.write_csv(results.old_municipalities, folder / "old_municipalities.csv")
    if results.periods is not None:
        from munirank.posterior.periods import write_period_files

        write_period_files(folder, results.periods)
    else:
        statements.write_statements(results.derived, results.municipalities, spec, folder)
    if "rank_outcome" in results.derived:  # competing outcomes: each outcome's statements
        from munirank.posterior.outcome_tables import outcome_statements_text

        with (folder / "statements.txt").open("a", encoding="utf-8") as text:
            text.write("\n" + outcome_statements_text(results.derived, spec))
    files.write_json(results.diagnostics, folder / "diagnostics.json")
    files.write_json(run, folder / "run.json")
    results.tree.to_netcdf(folder / "posterior.nc", engine="netcdf4",
                           encoding=_compressed(results.tree))


def _result_tree(tree: xr.DataTree, derived: xr.Dataset) -> xr.DataTree:
    """Posterior parameters, per-municipality derived draws and sampler stats.

    Nothing per person: the model's data groups (constant_data, observed_data) are dropped.
    """
    import xarray as xr

    from munirank.model.build import PARAMETERS

    posterior = tree["posterior"].dataset
    keep = [v for v in posterior.data_vars if v in (*PARAMETERS, "u_raw")]
    months = ["observed_months", "expected_months", "effect_months"]
    old = [f"{v}_old" for v in months if f"{v}_old" in derived]  # nested: old municipalities
    per_outcome = [f"{v}_outcome" for v in (*months, "rank") if f"{v}_outcome" in derived]
    groups = {
        "posterior": posterior[keep],
        "derived": derived[[*months, "rank", *old, *per_outcome]],
        "sample_stats": tree["sample_stats"].dataset,
    }
    out = xr.DataTree.from_dict(groups)
    out.attrs["ci_note"] = "intervals in the csv files are equal-tailed; see run.json"
    return out


def _compressed(tree: xr.DataTree) -> dict[str, dict[str, dict[str, Any]]]:
    """Zlib (level 1) for integer and boolean variables; float64 draws stored as they are.

    Measured on dk-1999-2005: zlib keeps 79-88 % of the float64 draws' size at about 50 MB/s,
    so compressing them cost 1.3 s for 38 MB; ranks, tree depths and flags shrink to 28 %.
    This takes 0.1 s for 46 MB. (zstd would give 43 MB in 0.2 s, but every reader would need
    the HDF5 filter plugin; float32 would change the results.)
    """
    return {node.path: {v: {"zlib": True, "complevel": 1} for v in node.dataset.data_vars
                        if node.dataset[v].dtype.kind in "iub"}
            for node in tree.subtree if node.has_data}


__all__ = ["FitResult", "fit"]
