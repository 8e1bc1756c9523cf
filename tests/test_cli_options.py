"""Every choice the command line offers runs once (issue 28).

The offered choices are read from :func:`munirank.cli.build_parser` (every option with
``choices``) and from the constants that options validated in code are checked against
(:func:`validated_in_code`). :data:`RUNS` are short real runs on the ``tiny`` preset (a
published-style table of 20 rows for ``reanalyse``; ``bench`` simulates its own registers);
what each run covers is read from its arguments, and the covered set must equal the offered
one, so a choice added later without a run here fails. Each run must exit 0 (convergence is
not asked: ``--allow-unconverged``), write its files and record the choice it was given.

Every run samples two chains: more than one is what starts PyMC's chain processes (which a
study's dask worker could not start); ``check`` needs 25 draws in all for PSIS-LOO. The runs
of ``fit``, ``compare``, ``check``, ``reanalyse`` and ``simulate`` run by default; ``study``
(a dask cluster per run) and ``bench`` (fresh processes on ``dk-1999-2005``, one with empty
compile caches) are marked slow.
"""

from __future__ import annotations

import argparse
import functools
import json
from dataclasses import dataclass

import pandas as pd
import pytest

from munirank.cli import build_parser, run

SHORT = ["--draws", "20", "--tune", "20", "--chains", "2", "--allow-unconverged", "--quiet"]
SHORT_CHECK = ["--draws", "15", "--tune", "20", "--chains", "2", "--allow-unconverged",
               "--quiet"]
SHORT_STUDY = ["--replicates", "1", "--workers", "1", "--draws", "20", "--tune", "20",
               "--chains", "2", "--quiet"]
SHORT_BENCH = ["--repeats", "1", "--draws", "20", "--scale-spells", "30000",
               "--scale-municipalities", "271"]  # dk's 271: small ones hold the extra spells

FIT_FILES = ("municipalities.csv", "covariates.csv", "survival.csv", "rank_probabilities.csv",
             "credible_sets.csv", "tiers.csv", "statements.txt", "diagnostics.json", "run.json",
             "posterior.nc")
FILES = {
    "simulate": ("spells.csv", "municipal.csv", "truth.csv", "spec.toml"),
    "fit": FIT_FILES,
    "compare": (*FIT_FILES, "frequentist.csv", "frequentist.json", "comparison.csv",
                "comparison_summary.txt", "truth_scores.json"),
    "check": ("loo.csv", "rank_sensitivity.csv", "ranks_by_model.csv", "completion.csv",
              "check.json"),
    "reanalyse": ("municipalities.csv", "checks.csv", "kappa.json", "diagnostics.json",
                  "run.json"),
    "study": ("study.json", "study_summary.csv", "reliability.csv", "summary.json",
              "calibration.png", "replicates/rep_0000.json"),
    "bench": ("bench.json", "bench.txt"),
}


def validated_in_code() -> dict[tuple[str, str], tuple[str, ...]]:
    """Options whose values are checked in code, not by argparse: their allowed values."""
    from munirank.checking.alternatives import variants
    from munirank.input.spec import Spec
    from munirank.simulation.presets import NAMES, OUTCOME_NAMES, PERIOD_PRESETS
    from munirank.studies.bench import CASES

    models = tuple(v.name for v in variants(Spec(), has_municipal=True)[1:])
    presets = NAMES + OUTCOME_NAMES
    return {("simulate", "--preset"): presets + PERIOD_PRESETS, ("study", "--preset"): presets,
            ("bench", "--cases"): CASES, ("check", "--models"): models}


LISTS = {("check", "--models"), ("bench", "--cases")}
"""Options that take a comma-separated list of their values."""


def commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


@functools.cache
def offered() -> frozenset[tuple[str, str, str]]:
    """(command, option, value) for every value the command line offers."""
    out = set()
    for command, parser in commands().items():
        for action in parser._actions:
            if action.choices is not None:
                out |= {(command, action.option_strings[-1], str(c)) for c in action.choices}
    for (command, option), values in validated_in_code().items():
        out |= {(command, option, v) for v in values}
    return frozenset(out)


@dataclass(frozen=True)
class Run:
    """One short run: the command's arguments (data and ``--out`` are added)."""

    command: str
    args: tuple[str, ...]
    slow: bool = False

    @property
    def id(self) -> str:
        return f"{self.command}:{'+'.join(sorted(v for _, _, v in self.covers()))}"

    def covers(self) -> set[tuple[str, str, str]]:
        """The (command, option, value) triples this run's arguments give explicitly."""
        options = {(c, o) for c, o, _ in offered()}
        out = set()
        for option, value in zip(self.args, self.args[1:], strict=False):
            if (self.command, option) in options:
                values = value.split(",") if (self.command, option) in LISTS else [value]
                out |= {(self.command, option, v) for v in values}
        return out


RUNS = [
    Run("simulate", ("--preset", "tiny", "--effect-dist", "normal", "--baseline", "weibull")),
    Run("simulate", ("--preset", "tiny", "--effect-dist", "student_t", "--baseline",
                     "loglogistic")),
    Run("simulate", ("--preset", "dk-1999-2005")),
    Run("simulate", ("--preset", "no-2012-2018")),
    Run("simulate", ("--preset", "dk-two-periods")),
    *[Run("simulate", ("--preset", p)) for p in ("tiny-outcomes", "dk-outcomes")],
    *[Run(c, ("--sampler", s, "--method", "nuts", *SHORT)) for c in ("fit", "compare")
      for s in ("nutpie", "pymc")],
    *[Run(c, ("--method", "laplace", *SHORT)) for c in ("fit", "compare")],
    # PyMC starts two chain processes per model: most alternatives go to nutpie
    Run("check", ("--sampler", "nutpie", "--method", "nuts", "--models",
                  "exponential,loglogistic,lognormal,piecewise_exponential", *SHORT_CHECK)),
    Run("check", ("--sampler", "pymc", "--method", "nuts", "--models", "weibull_student_t",
                  *SHORT_CHECK)),
    Run("check", ("--method", "laplace", "--models", "weibull_no_municipal", *SHORT_CHECK)),
    *[Run("reanalyse", ("--sampler", s, "--method", "nuts", *SHORT))
      for s in ("nutpie", "pymc")],
    Run("study", ("--preset", "tiny", "--sampler", "nutpie", "--effect-dist", "normal",
                  "--baseline", "weibull", *SHORT_STUDY), slow=True),
    Run("study", ("--preset", "tiny", "--sampler", "pymc", "--effect-dist", "student_t",
                  "--baseline", "loglogistic", *SHORT_STUDY), slow=True),
    *[Run("study", ("--preset", p, "--scale", "0.1", *SHORT_STUDY), slow=True)
      for p in ("dk-1999-2005", "no-2012-2018")],
    Run("bench", ("--cases", "nutpie,pymc,frequentist,laplace", *SHORT_BENCH), slow=True),
    Run("bench", ("--cases", "nutpie-cold", *SHORT_BENCH), slow=True),
    Run("bench", ("--cases", "periods", *SHORT_BENCH), slow=True),
    Run("bench", ("--cases", "outcomes", *SHORT_BENCH), slow=True),
    *[Run("study", ("--preset", p, "--replicates", "1", "--draws", "40", "--tune", "40",
                    "--chains", "2"), slow=True) for p in ("tiny-outcomes", "dk-outcomes")],
    Run("bench", ("--cases", "scale-nuts,scale-laplace", *SHORT_BENCH), slow=True),
    Run("bench", ("--cases", "episodes", "--episodes-persons", "2000"), slow=True),
    Run("bench", ("--cases", "study-replicate", "--draws", "20"), slow=True),
    Run("bench", ("--cases", "check", *SHORT_BENCH), slow=True),
]


# --- the walk covers what the command line offers --------------------------------------------

def test_every_offered_choice_has_a_run():
    walked = set().union(*(r.covers() for r in RUNS))
    assert walked == offered(), ("offered without a run: " + repr(sorted(offered() - walked))
                                 + "; run but not offered: " + repr(sorted(walked - offered())))


def test_runs_that_run_by_default_cover_fit_compare_check_reanalyse_and_simulate():
    default = set().union(*(r.covers() for r in RUNS if not r.slow))
    for command in ("fit", "compare", "check", "reanalyse", "simulate"):
        assert {t for t in offered() if t[0] == command} <= default


def test_options_validated_in_code_exist_and_help_names_their_values():
    parsers = commands()
    for (command, option), values in validated_in_code().items():
        action = next(a for a in parsers[command]._actions if option in a.option_strings)
        if command != "check":  # --models: the alternatives depend on the spec's model
            assert all(v in action.help for v in values), (command, option)


def test_dropped_choices_are_not_offered():
    values = {v for _, _, v in offered()}
    assert not {"numpyro", "pathfinder"} & values


# --- each run --------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def published_table(tmp_path_factory):
    """A published-style observed-minus-expected table of 20 municipalities."""
    from munirank.established.published import simulate_table

    path = tmp_path_factory.mktemp("published") / "table.csv"
    simulate_table(20, seed=1).drop(columns=["true_effect", "true_se"]).to_csv(path,
                                                                                index=False)
    return path


def _argv(r: Run, tiny_dir, table, out) -> list[str]:
    head = {"fit": [str(tiny_dir / "spells.csv"), "--spec", str(tiny_dir / "spec.toml")],
            "reanalyse": [str(table)]}
    head["compare"] = head["check"] = head["fit"]
    return [r.command, *head.get(r.command, []), *r.args, "--out", str(out)]


def _recorded(r: Run, out) -> dict[str, object]:
    """The choices the run's own files record, to compare with what it was given."""
    given = {o.lstrip("-").replace("-", "_"): v for _, o, v in r.covers()}
    if r.command in ("fit", "compare", "reanalyse"):
        diag = json.loads((out / "diagnostics.json").read_text())
        return {k: diag[k] for k in ("sampler", "method") if k in given}
    if r.command == "check":
        check = json.loads((out / "check.json").read_text())
        got = {k: check["sampling"][k] for k in ("sampler", "method") if k in given}
        got["models"] = set(check["models"]) - {check["chosen_model"]}
        return got
    if r.command == "study":
        study = json.loads((out / "study.json").read_text())
        known = {"preset": study["preset"], **study["overrides"], **study["sampling"]}
        return {k: known[k] for k in given}
    if r.command == "bench":
        report = json.loads((out / "bench.json").read_text())
        failed = {c: v["error"] for c, v in report["cases"].items() if "error" in v}
        assert not failed
        return {"cases": set(report["cases"])}
    return {}


def _expected(r: Run) -> dict[str, object]:
    given = {o.lstrip("-").replace("-", "_"): v for _, o, v in r.covers()}
    if r.command == "check":
        return {**{k: v for k, v in given.items() if k != "models"},
                "models": {v for _, o, v in r.covers() if o == "--models"}}
    if r.command == "bench":
        return {"cases": {v for _, _, v in r.covers()}}
    if r.command == "simulate":
        return {}
    return given


@pytest.mark.parametrize("r", [pytest.param(r, id=r.id, marks=[pytest.mark.slow] * r.slow)
                               for r in RUNS])
def test_each_offered_choice_runs(r, tiny_dir, published_table, tmp_path, capsys):
    out = tmp_path / "out"
    code = run(_argv(r, tiny_dir, published_table, out))
    err = capsys.readouterr().err
    assert code == 0, err[-2000:]
    files = FILES[r.command]
    if r.command == "study" and "outcomes" in r.args[1]:  # recovery of competing outcomes
        files = ("study.json", "study_summary.csv", "summary.json", "replicates/rep_0000.json")
    missing = [f for f in files if not (out / f).is_file()]
    assert not missing
    assert _recorded(r, out) == _expected(r)
    if r.command == "simulate":
        assert len(pd.read_csv(out / "spells.csv")) > 0
