"""The ``check`` case of ``munirank bench``: model checking on ``dk-1999-2005`` (issue 29).

:func:`run_case` runs ``munirank check`` (:func:`munirank.checking.alternatives.run_checks`,
the chosen Weibull model and its six alternatives, the spec's sampling settings) in the fresh
process that :mod:`munirank.studies.bench` starts for each case; bench records that process's
seconds from its start to the last file, as for every case. From check.json come each model's
seconds (from building its model to its ranks) and their stages. :func:`ratios` sets them
against the ``nutpie`` case of the same bench run: the whole ``check`` command over the whole
``fit`` command, and each alternative's seconds over the fit's own in-process seconds (both
without the interpreter's start and imports). The targets of issue 29 are 6 and 2.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

CHECK_OVER_FIT_MAX = 6.0
ALTERNATIVE_OVER_FIT_MAX = 2.0


def run_case(data: Path, out: Path, draws: int | None, tune: int | None) -> dict[str, Any]:
    """``munirank check`` on the spells and spec in ``data``, written to ``out``.

    Returns
    -------
    dict
        ``wall_seconds`` (in this process), ``models`` (each model's seconds and stages from
        check.json), ``chosen_model``, ``stage_timings`` (the command's stages besides the
        models), ``converged`` (every model) and ``n_episodes``.
    """
    from munirank import api
    from munirank.input.spec import load_spec

    spec = load_spec(data / "spec.toml").with_sampling(draws=draws, tune=tune)
    t0 = time.perf_counter()
    api.check(data / "spells.csv", spec=spec, out=out)
    wall = time.perf_counter() - t0
    check = json.loads((out / "check.json").read_text())
    models = {name: {"seconds": m["seconds"], **m.get("timings", {})}
              for name, m in check["models"].items()}
    return {"wall_seconds": wall, "chosen_model": check["chosen_model"], "models": models,
            "stage_timings": check.get("timings", {}),
            "converged": all(m["converged"] for m in check["models"].values()),
            "n_episodes": check["n_episodes"]}


def ratios(check: dict[str, Any], fit: dict[str, Any]) -> dict[str, float]:
    """The check case against the default fit (the ``nutpie`` case) of the same bench run.

    ``check_over_fit``: whole commands (``process_seconds``); ``alternative_over_fit_max``:
    the slowest alternative's seconds over the fit's ``wall_seconds``; and each alternative's.
    """
    out = {"check_over_fit": check["process_seconds"] / fit["process_seconds"]}
    each = {name: m["seconds"] / fit["wall_seconds"] for name, m in check["models"].items()
            if name != check["chosen_model"]}
    if each:
        out["alternative_over_fit_max"] = max(each.values())
    out.update({f"alternative_over_fit[{name}]": r for name, r in each.items()})
    return out
