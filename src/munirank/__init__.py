"""munirank: Bayesian benchmarking of municipalities.

A partially pooled Weibull survival model with individual and municipal covariates gives,
for every municipality, shrunken effects in months and hazard ratios, rank distributions,
rank intervals and probabilities of being in the top or bottom ten.

The package is organised by the stages a spell goes through: :mod:`munirank.input` (spec,
reading, validation, episodes), :mod:`munirank.model` (model, kernel, sampling),
:mod:`munirank.posterior` (effects, ranks, sets, tables, statements), :mod:`munirank.checking`
(convergence, predictive checks, alternatives), :mod:`munirank.established` (the frequentist
benchmark and published tables), :mod:`munirank.output` (files, destinations, disclosure),
:mod:`munirank.reporting` (the HTML report), :mod:`munirank.simulation` (registers with known
truth) and :mod:`munirank.studies` (simulation studies and benchmarks). :mod:`munirank.api`
has one function per command, :mod:`munirank.cli` the command line.
"""

from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING, Any

from munirank.errors import InputError, NotConvergedError
from munirank.threads import passive_openmp

passive_openmp()  # before any numba kernel loads OpenMP (munirank.threads)

try:
    __version__ = version("munirank")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

if TYPE_CHECKING:
    from munirank.api import (
        FitResult,
        bench,
        check,
        compare,
        episodes,
        fit,
        pairwise,
        read_truth,
        reanalyse,
        report,
        simulate,
        study,
        study_statements,
    )


def __getattr__(name: str) -> Any:
    """The API's functions, imported the first time they are used (see :mod:`munirank.api`)."""
    import importlib

    api = importlib.import_module("munirank.api")  # not `from munirank import api`: recursion
    if name in api.EXPORTS:
        return getattr(api, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["FitResult", "InputError", "NotConvergedError", "__version__", "bench", "check",
           "compare", "episodes", "fit", "pairwise", "read_truth", "reanalyse", "report",
           "simulate", "study", "study_statements"]
