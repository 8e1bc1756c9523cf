"""The Python API: one function per command-line command, each imported when first used.

>>> import munirank
>>> munirank.simulate("tiny", seed=1, out="sim")            # doctest: +SKIP
>>> result = munirank.fit("sim/spells.csv", spec="sim/spec.toml", out="fit")  # doctest: +SKIP
>>> result.municipalities.head()                              # doctest: +SKIP

============== =========================================================
command        function
============== =========================================================
``simulate``   :func:`munirank.simulation.register.simulate`
``episodes``   :func:`munirank.input.extracts.episodes`
``fit``        :func:`munirank.benchmark.fit`
``compare``    :func:`munirank.established.comparison.compare`
``check``      :func:`munirank.checking.alternatives.run_checks`
``reanalyse``  :func:`munirank.established.published.reanalyse`
``report``     :func:`munirank.reporting.html.report`
``pairwise``   :func:`munirank.posterior.sets.pairwise`
``study``      :func:`munirank.studies.replicates.study`
``study-statements`` :func:`munirank.studies.statements.study_statements`
``bench``      :func:`munirank.studies.bench.bench`
============== =========================================================

Importing :mod:`munirank` loads none of them (PyMC takes seconds to import); each is imported
the first time it is used.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

#: Public name -> (module, attribute).
EXPORTS: dict[str, tuple[str, str]] = {
    "simulate": ("munirank.simulation.register", "simulate"),
    "episodes": ("munirank.input.extracts", "episodes"),
    "fit": ("munirank.benchmark", "fit"),
    "compare": ("munirank.established.comparison", "compare"),
    "check": ("munirank.checking.alternatives", "run_checks"),
    "reanalyse": ("munirank.established.published", "reanalyse"),
    "report": ("munirank.reporting.html", "report"),
    "pairwise": ("munirank.posterior.sets", "pairwise"),
    "study": ("munirank.studies.replicates", "study"),
    "study_statements": ("munirank.studies.statements", "study_statements"),
    "bench": ("munirank.studies.bench", "bench"),
    "FitResult": ("munirank.benchmark", "FitResult"),
    "read_truth": ("munirank.input.truth", "read_truth"),
}

if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ imports on first use
    pass


def __getattr__(name: str) -> Any:
    """Import a public function the first time it is used (PEP 562)."""
    try:
        module, attribute = EXPORTS[name]
    except KeyError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *EXPORTS})


__all__ = sorted(EXPORTS)
