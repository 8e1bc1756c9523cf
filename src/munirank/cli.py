"""The ``munirank`` command line: parsing, and one line per error.

Exit codes are listed in :mod:`munirank.errors`. Each command's work is imported only when it
runs, so ``--help`` and usage errors stay fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import NoReturn

from munirank.errors import (
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_UNCONVERGED,
    InputError,
    MissingExtra,
)
from munirank.input.spec import DEFAULT_TUNE, METHODS, SAMPLERS

_TUNE_HELP = "tuning steps per chain (default: " + ", ".join(
    f"{n} with {sampler}" for sampler, n in DEFAULT_TUNE.items()) + ")"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """Usage errors are one line and exit code 2, like every other bad input."""
        raise InputError(f"{self.prog}: {message} (see --help)")


def _add_sampling(p: argparse.ArgumentParser, *, laplace: bool = True) -> None:
    p.add_argument("--draws", type=int, help="posterior draws per chain (default 1000)")
    p.add_argument("--tune", type=int,
                   help=_TUNE_HELP)
    p.add_argument("--chains", type=int, help="number of chains (default 4)")
    p.add_argument("--seed", type=int, help="random seed (default 1)")
    p.add_argument("--sampler", choices=SAMPLERS, help="default nutpie")
    if laplace:
        p.add_argument("--method", choices=METHODS,
                       help="default nuts; laplace: a nested Laplace approximation, fast, for "
                       "registers too large to refit often with NUTS")
    else:
        p.add_argument("--method", choices=["nuts"], help="nuts (the only method here)")
    p.add_argument("--ci", type=float, dest="ci_prob", help="interval probability (default 0.9)")
    p.add_argument("--min-cell", type=int, help="smallest count shown in outputs (default 5)")
    p.add_argument("--allow-unconverged", action="store_true",
                   help="exit 0 even if the convergence gate fails (outputs are flagged anyway)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


def _add_overwrite(p: argparse.ArgumentParser, what: str = "folder") -> None:
    if what == "folder":
        text = ("write into a --out folder that holds files munirank did not write: only "
                "munirank's own files there are replaced, the others are kept (a folder "
                "munirank wrote is replaced without it)")
    else:
        text = ("replace a --out file that munirank did not write (one munirank wrote is "
                "replaced without it)")
    p.add_argument("--overwrite", action="store_true", help=text)


def _cmd_simulate(args: argparse.Namespace) -> int:
    from munirank.simulation.register import simulate

    out = simulate(args.preset, seed=args.seed, out=args.out, effect_sd=args.effect_sd,
                   effect_dist=args.effect_dist, baseline=args.baseline, scale=args.scale,
                   overwrite=args.overwrite, register_form=args.register_form)
    extra = ", persons.csv, residence.csv, crosswalk.csv" if args.register_form else ""
    print(f"simulated {args.preset} (seed {args.seed}) -> {out}/spells.csv, municipal.csv, "
          f"truth.csv{extra}, spec.toml")
    if args.check:
        from munirank.simulation.calibration import check_command

        return int(check_command(out, args.preset))
    return EXIT_OK


def _spec_with_min_cell(args: argparse.Namespace):  # noqa: ANN202 - internal
    from munirank.input.spec import load_spec

    spec = load_spec(args.spec)
    if args.min_cell is not None:
        spec = replace(spec, disclosure=replace(spec.disclosure, min_cell=args.min_cell))
    return spec


def _print_ranking(table, k: int, n: int = 5) -> None:  # noqa: ANN001
    cols = ["municipality", "effect_months_mean", "effect_months_lo", "effect_months_hi",
            "rank_mean", "rank_lo", "rank_hi", f"p_top{k}", f"p_bottom{k}"]
    with_fmt = table[cols].round(2)
    print(f"Fastest {n} (rank 1 = fastest; 90% intervals unless --ci):")
    print(with_fmt.head(n).to_string(index=False))
    print(f"Slowest {n}:")
    print(with_fmt.tail(n).to_string(index=False))


def _cmd_fit(args: argparse.Namespace) -> int:
    from munirank.benchmark import fit

    result = fit(args.data, spec=args.spec, out=args.out, draws=args.draws, tune=args.tune,
                 chains=args.chains, seed=args.seed, sampler=args.sampler, method=args.method,
                 ci_prob=args.ci_prob, min_cell=args.min_cell, progressbar=not args.quiet,
                 overwrite=args.overwrite)
    d = result.diagnostics
    table = result.municipalities
    if "period" in table:  # measurement periods: the latest one (changes: statements.txt)
        latest = table["period"].iloc[-1]
        print(f"Period {latest} (every period in municipalities.csv; changes in changes.csv):")
        table = table[table["period"] == latest]
    _print_ranking(table, result.municipalities.attrs["top_k"])
    print(f"R-hat max {d['rhat_max']:.3f}, bulk ESS min {d['ess_bulk_min']:.0f}, "
          f"divergences {d['divergences']}, wall {d['wall_seconds']:.1f} s -> {result.out}")
    if not result.converged:
        print(f"munirank: warning: NOT CONVERGED ({d['criteria']}); outputs are flagged "
              "converged=false", file=sys.stderr)
        return EXIT_OK if args.allow_unconverged else EXIT_UNCONVERGED
    return EXIT_OK


def _delegate(module: str, function: str) -> Callable[[argparse.Namespace], int]:
    """Run ``munirank.<module>.<function>(args)`` (imported only when the command runs)."""

    def call(args: argparse.Namespace) -> int:
        import importlib

        return int(getattr(importlib.import_module(f"munirank.{module}"), function)(args))

    return call


def _check(args: argparse.Namespace) -> int:
    """``munirank check``: its second process started before the models are imported."""
    from munirank.checking.schedule import start_early

    start_early()
    return _delegate("checking.alternatives", "check_command")(args)


def _add_data_spec_out(p: argparse.ArgumentParser) -> None:
    p.add_argument("data", type=Path, help="spell file: .csv, .parquet, .dta or .sas7bdat")
    p.add_argument("--spec", required=True, type=Path, help="SPEC.toml")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    _add_overwrite(p)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one subcommand per API function."""
    parser = _Parser(prog="munirank", description="Bayesian benchmarking of municipalities.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("simulate", help="simulate a register with known truth")
    p.add_argument("--preset", required=True,
                   help="tiny, tiny-panel, dk-1999-2005, no-2012-2018, dk-two-periods, or "
                   "with competing outcomes tiny-outcomes or dk-outcomes")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--effect-sd", type=float, help="SD of true municipality log hazard ratios")
    p.add_argument("--effect-dist", choices=["normal", "student_t"])
    p.add_argument("--baseline", choices=["weibull", "loglogistic"],
                   help="baseline hazard the register is simulated from")
    p.add_argument("--scale", type=float, help="multiply the number of spells")
    p.add_argument("--check", action="store_true",
                   help="print simulated vs published national figures")
    p.add_argument("--register-form", action="store_true",
                   help="also write the register form: persons.csv, residence.csv (dates) and "
                   "a simulated crosswalk.csv, for `munirank episodes`")
    _add_overwrite(p)
    p.set_defaults(func=_cmd_simulate)

    p = sub.add_parser("episodes", help="episodes from register extracts with dates "
                       "(person table and residence history)")
    p.add_argument("persons", type=Path, help="person table: id, arrival, event and end dates, "
                   "covariates (.csv, .parquet, .dta, .sas7bdat, .xpt)")
    p.add_argument("residence", type=Path,
                   help="residence history: id, municipality, from date, to date")
    p.add_argument("--spec", required=True, type=Path,
                   help="SPEC.toml with a [registers] section naming the columns")
    p.add_argument("--out", required=True, type=Path, help="output folder")
    _add_overwrite(p)
    p.set_defaults(func=_delegate("input.extracts", "episodes_command"))

    p = sub.add_parser("fit", help="fit the Bayesian model and rank municipalities")
    _add_data_spec_out(p)
    _add_sampling(p)
    p.add_argument("--compare-models", action="store_true",
                   help="also fit alternative models and print a LOO table")
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser("check", help="model checking: alternatives, LOO, rank/prior sensitivity")
    _add_data_spec_out(p)
    _add_sampling(p)
    p.add_argument("--models", help="comma-separated alternatives to fit (default all)")
    p.set_defaults(func=_check)

    p = sub.add_parser("compare", help="frequentist benchmark vs Bayesian, side by side")
    _add_data_spec_out(p)
    _add_sampling(p)
    p.add_argument("--cutoff", type=int, default=80,
                   help="rank only municipalities with more spells than this (AKF: 80)")
    p.add_argument("--no-cutoff", action="store_true", help="rank every municipality")
    p.set_defaults(func=_delegate("established.comparison", "compare_command"))

    p = sub.add_parser("reanalyse", help="rank uncertainty from a published O-E table")
    p.add_argument("table", type=Path)
    p.add_argument("--out", required=True, type=Path)
    for col in ("municipality", "effect", "stars", "p", "se", "n_spells", "completed_pct",
                "rank"):
        p.add_argument(f"--col-{col.replace('_', '-')}", dest=f"col_{col}",
                       help=f"name of the {col} column")
    p.add_argument("--encoding", default="utf-8")
    _add_overwrite(p)
    # model.laplace's grid integrates over the survival model's municipality SD; the published
    # table's model would get a single Gaussian at its joint mode, which over-shrinks
    _add_sampling(p, laplace=False)
    p.set_defaults(func=_delegate("established.published", "reanalyse_command"))

    p = sub.add_parser("report", help="self-contained HTML report of a fit folder")
    p.add_argument("folder", type=Path)
    p.add_argument("--out", required=True, type=Path)
    _add_overwrite(p, "file")
    p.set_defaults(func=_delegate("reporting.html", "report_command"))

    p = sub.add_parser("pairwise", help="P(A faster than B) for named municipalities of a fit")
    p.add_argument("folder", type=Path, help="output folder of `munirank fit`")
    p.add_argument("--municipalities", required=True,
                   help='comma-separated names to compare, e.g. "Horsens,Vejle,Kolding"')
    p.add_argument("--out", type=Path, help="CSV file for the table P(row faster than column)")
    p.add_argument("--ci", type=float, dest="ci_prob",
                   help="probability from which an order is called credible (default: the "
                   "fit's, 0.9)")
    _add_overwrite(p, "file")
    p.set_defaults(func=_delegate("posterior.statements", "pairwise_command"))

    p = sub.add_parser("study", help="simulation study: both methods scored against truth")
    p.add_argument("--preset", required=True,
                   help="tiny, dk-1999-2005 or no-2012-2018; tiny-outcomes or dk-outcomes: "
                   "recovery of competing outcomes (fit only, replicates in this process)")
    p.add_argument("--replicates", type=int, required=True)
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--scheduler", help="address of an existing dask scheduler")
    p.add_argument("--workers", type=int, default=2,
                   help="worker processes of the local cluster (default 2)")
    p.add_argument("--seed", type=int, default=1, help="base seed of the replicates")
    p.add_argument("--effect-sd", type=float, help="SD of true municipality log hazard ratios")
    p.add_argument("--effect-dist", choices=["normal", "student_t"])
    p.add_argument("--baseline", choices=["weibull", "loglogistic"],
                   help="simulate from this baseline (loglogistic: the fit is misspecified)")
    p.add_argument("--scale", type=float, help="multiply the spells of every municipality")
    p.add_argument("--n-small", type=int,
                   help="number of small municipalities besides the named ones")
    p.add_argument("--draws", type=int, help="posterior draws per chain (default 1000)")
    p.add_argument("--tune", type=int,
                   help=_TUNE_HELP)
    p.add_argument("--chains", type=int, help="number of chains (default 4)")
    p.add_argument("--sampler", choices=SAMPLERS, help="default nutpie")
    p.add_argument("--cutoff", type=int, default=80,
                   help="frequentist: rank only municipalities with more spells than this")
    p.add_argument("--no-cutoff", action="store_true", help="frequentist: rank every one")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_overwrite(p)
    p.set_defaults(func=_delegate("studies.replicates", "study_command"))

    p = sub.add_parser("study-statements",
                       help="how often the ranking statements hold, against simulated truth")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--replicates", type=int, help="registers to simulate and fit")
    p.add_argument("--n-municipalities", type=int, default=60,
                   help="municipalities per register, 500 down to 10 spells (default 60)")
    p.add_argument("--draws", type=int, default=1000, help="draws per chain (default 1000)")
    p.add_argument("--tune", type=int, help=_TUNE_HELP)
    p.add_argument("--chains", type=int, default=4, help="chains (default 4)")
    p.add_argument("--part", default="0/1",
                   help="i/n: run the replicates r with r %% n == i (n processes share the cores)")
    p.add_argument("--worked-example", action="store_true",
                   help="fit dk-1999-2005 (seed 1) and print its statements beside the truth")
    p.add_argument("--fit", type=Path, help="worked example: a fit folder of those data to reuse")
    p.add_argument("--quiet", action="store_true", help="no line per replicate")
    _add_overwrite(p)
    p.set_defaults(func=_delegate("studies.statements", "study_statements_command"))

    p = sub.add_parser("bench", help="speed and scale benchmarks")
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--cases", help="comma-separated cases (default all: nutpie, pymc, "
                   "nutpie-cold, frequentist, laplace, scale-nuts, scale-laplace, "
                   "study-replicate, episodes, check, periods, outcomes)")
    p.add_argument("--repeats", type=int, default=3,
                   help="alternating runs of nutpie and pymc; ratios are medians (default 3)")
    p.add_argument("--seed", type=int, default=1, help="seed of the registers and fits")
    p.add_argument("--scale-spells", type=int, default=1_000_000,
                   help="spells of the scale runs (default 1,000,000)")
    p.add_argument("--scale-municipalities", type=int, default=400,
                   help="municipalities of the scale runs (default 400)")
    p.add_argument("--draws", type=int, help="draws per chain of every fit (default 1000)")
    p.add_argument("--episodes-persons", type=int, default=1_000_000,
                   help="persons in the register extracts of the episodes case "
                   "(default 1,000,000)")
    _add_overwrite(p)
    p.set_defaults(func=_delegate("studies.bench", "bench_command"))
    return parser


class _StderrLine(logging.Handler):
    """munirank's notices (e.g. an earlier output replaced) as one line on the current stderr."""

    def emit(self, record: logging.LogRecord) -> None:
        level = "warning: " if record.levelno >= logging.WARNING else ""
        print(f"munirank: {level}{self.format(record)}", file=sys.stderr)


def _show_notices() -> None:
    logger = logging.getLogger("munirank")
    if not any(isinstance(h, _StderrLine) for h in logger.handlers):
        logger.addHandler(_StderrLine(logging.INFO))
        logger.setLevel(logging.INFO)


def run(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the command; return the exit code."""
    from munirank.output.files import interruptible

    _show_notices()
    try:
        args = build_parser().parse_args(argv)
        func: Callable[[argparse.Namespace], int] = args.func
        with interruptible():  # SIGTERM ends a run like Ctrl-C: cleaned up, nothing written
            return func(args)
    except (InputError, MissingExtra) as err:
        print(f"munirank: error: {err}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt as err:
        print("munirank: interrupted; no output written", file=sys.stderr)
        return 128 + getattr(err, "signum", EXIT_INTERRUPTED - 128)


def main() -> None:
    """Console entry point."""
    sys.exit(run())
