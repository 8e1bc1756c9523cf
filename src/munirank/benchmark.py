"""The Bayesian benchmark of a register, end to end (``munirank fit``).

The stages in order: the spec and the episodes (:mod:`munirank.input`), the model and its
posterior (:mod:`munirank.model`), the convergence gate (:mod:`munirank.checking`), effects,
ranks, tables and statements (:mod:`munirank.posterior`), and the output folder, written
completely or not at all (:mod:`munirank.output`).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from munirank.checking import diagnostics, predictive
from munirank.errors import InputError
from munirank.input import validate
from munirank.input.episodes import load_episodes
from munirank.input.read import data_hash
from munirank.input.spec import Spec, load_spec, spec_hash, spec_to_dict
from munirank.model.build import PARAMETERS, create_model
from munirank.model.sampling import sample_posterior
from munirank.output import destinations, disclosure, files
from munirank.posterior import statements, tables


@dataclass(frozen=True)
class FitResult:
    """What :func:`fit` produced (the same content as its output folder)."""

    out: Path
    municipalities: pd.DataFrame
    covariates: pd.DataFrame
    diagnostics: dict[str, Any]
    tree: xr.DataTree

    @property
    def converged(self) -> bool:
        """Whether the run passed the convergence gate."""
        return bool(self.diagnostics["converged"])


def command_inputs(data: str | Path, spec: str | Path | Spec) -> tuple[Path, ...]:
    """The files a command reads, which its ``--out`` must not hold."""
    return (Path(data),) if isinstance(spec, Spec) else (Path(data), Path(spec))


def resolve_spec(spec: str | Path | Spec) -> tuple[Spec, str]:
    if isinstance(spec, Spec):
        return spec, "<in memory>"
    return load_spec(spec), str(spec)


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
    spec_obj, spec_file = resolve_spec(spec)
    spec_obj = spec_obj.with_sampling(draws=draws, tune=tune, chains=chains, seed=seed,
                                      sampler=sampler, method=method, ci_prob=ci_prob)
    if min_cell is not None:
        spec_obj = replace(spec_obj, disclosure=replace(spec_obj.disclosure, min_cell=min_cell))
    from munirank.input.spec import check_spec

    check_spec(spec_obj, file=spec_file)
    if spec_obj.model.baseline != "weibull":  # effects and PPC curves are Weibull's here
        raise InputError(f"fit reports the Weibull model; baseline "
                         f"{spec_obj.model.baseline!r} is compared by 'munirank check'",
                         file=spec_file, column="model.baseline")
    validate.check_encoding(spec_obj, file=spec_file)
    episodes = load_episodes(data, spec_obj)
    if spec_obj.sampling.adaptation == "auto":
        from munirank.input.spec import AUTO_ADAPTATION

        spec_obj = spec_obj.with_sampling(adaptation=AUTO_ADAPTATION)
    t_data = time.perf_counter()
    model = create_model(episodes, spec_obj.model)
    with files.interruptible():  # nutpie returns truncated draws on Ctrl-C: never use them
        tree, timing = sample_posterior(model, spec_obj.sampling, progressbar=progressbar)
    t_sampled = time.perf_counter()
    posterior = tree["posterior"].dataset
    diag = diagnostics.convergence(tree, var_names=list(PARAMETERS))
    derived = tables.derived_draws(posterior, episodes, spec_obj)
    table = tables.municipality_table(posterior, derived, episodes, spec_obj,
                                         converged=diag["converged"])
    covs = tables.covariate_table(posterior, episodes, ci_prob=spec_obj.sampling.ci_prob)
    survival = predictive.survival_table(
        posterior, episodes, ci_prob=spec_obj.sampling.ci_prob,
        groups=predictive.survival_groups(episodes, named=spec_obj.ranking.subset),
        min_cell=spec_obj.disclosure.min_cell)
    t_end = time.perf_counter()
    s = spec_obj.sampling
    diag.update(sampler=s.sampler, method=s.method, adaptation=s.adaptation,
                chains=s.chains, draws=s.draws,
                tune=s.tuning_steps, wall_seconds=round(t_end - t_start, 2))
    timings = {"read_validate_seconds": t_data - t_start, **timing,
               "effects_ranks_seconds": t_end - t_sampled, "wall_seconds": t_end - t_start}
    result_tree = _result_tree(tree, derived)
    disclosure.check_aggregate(result_tree)
    run = {"command": " ".join(sys.argv), "seed": s.seed, "spec_file": spec_file,
           "spec": spec_to_dict(spec_obj), "spec_hash": spec_hash(spec_obj),
           "data_file": str(data), "data_hash": data_hash(data),
           "municipal_table_hash": (data_hash(spec_obj.resolve(spec_obj.data.municipal_table))
                                    if spec_obj.data.municipal_table else None),
           "versions": files.versions(),
           "timings": {k: round(v, 3) for k, v in timings.items()},
           "n_episodes": int(episodes.sizes["episode"]),
           "n_municipalities": int(episodes.sizes["municipality"])}
    with destinations.atomic_folder(out, command="fit", overwrite=overwrite,
                                    inputs=inputs) as tmp:
        files.write_csv(table, tmp / "municipalities.csv")
        files.write_csv(covs, tmp / "covariates.csv")
        files.write_csv(survival, tmp / "survival.csv")
        subset = tables.subset_table(derived, spec_obj)
        if subset is not None:
            files.write_csv(subset, tmp / "ranks_subset.csv")
        old = tables.old_municipality_table(posterior, derived, episodes, spec_obj)
        if old is not None:  # nested ([data] parent): the old municipalities' own effects
            files.write_csv(old, tmp / "old_municipalities.csv")
        statements.write_statements(derived, table, spec_obj, tmp)  # sets, tiers, sentences
        files.write_json(diag, tmp / "diagnostics.json")
        files.write_json(run, tmp / "run.json")
        result_tree.to_netcdf(tmp / "posterior.nc", engine="netcdf4",
                              encoding=_compressed(result_tree))
    return FitResult(out=Path(out), municipalities=table, covariates=covs, diagnostics=diag,
                     tree=result_tree)


def _result_tree(tree: xr.DataTree, derived: xr.Dataset) -> xr.DataTree:
    """Posterior parameters, per-municipality derived draws and sampler stats.

    Nothing per person: the model's data groups (constant_data, observed_data) are dropped.
    """
    posterior = tree["posterior"].dataset
    keep = [v for v in posterior.data_vars if v in (*PARAMETERS, "u_raw")]
    months = ["observed_months", "expected_months", "effect_months"]
    old = [f"{v}_old" for v in months if f"{v}_old" in derived]  # nested: old municipalities
    groups = {
        "posterior": posterior[keep],
        "derived": derived[[*months, "rank", *old]],
        "sample_stats": tree["sample_stats"].dataset,
    }
    out = xr.DataTree.from_dict(groups)
    out.attrs["ci_note"] = "intervals in the csv files are equal-tailed; see run.json"
    return out


def _compressed(tree: xr.DataTree) -> dict[str, dict[str, dict[str, Any]]]:
    """Zlib for every numeric variable: draws compress to about half."""
    return {node.path: {v: {"zlib": True, "complevel": 4} for v in node.dataset.data_vars
                        if node.dataset[v].dtype.kind in "fiub"}
            for node in tree.subtree if node.has_data}


__all__ = ["FitResult", "fit"]
