"""munirank: Bayesian benchmarking of municipalities.

A partially pooled Weibull survival model with individual and municipal covariates gives,
for every municipality, shrunken effects in months and hazard ratios, rank distributions,
rank intervals and probabilities of being in the top or bottom ten.
"""

from importlib.metadata import PackageNotFoundError, version

from munirank.api import FitResult, fit, read_truth, simulate
from munirank.errors import InputError, NotConvergedError

try:
    __version__ = version("munirank")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0+unknown"

__all__ = ["FitResult", "InputError", "NotConvergedError", "__version__", "fit", "read_truth",
           "simulate"]
