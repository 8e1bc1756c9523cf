"""How often the ranking statements hold: credible sets, tiers and triple-goal estimates.

For each replicate: simulate a register with known truth (the ``tiny`` preset with
``--n-municipalities`` municipalities of geometric sizes, top_k = 10), fit it with short
chains, and compare with truth.csv:

- does the 0.9 "contains" set for the top (bottom) ten contain the whole true top (bottom) ten?
- are all members of the "each" set truly in the top ten?
- does the true order respect the tiers?
- rank and effect errors of the GR estimates against posterior means: mean squared rank error
  (GR integer ranks, ranks of the posterior mean effects, posterior mean ranks), mean squared
  effect error, and the error of the estimates' EDF (mean |sorted estimate - sorted truth|,
  the Wasserstein-1 distance between the two histograms).

The ``study-statements`` command (resumable: replicates already in a results file are skipped;
``--part i/n`` runs the replicates r with r % n == i, so that n processes can share the cores,
each writing its own results file; the summary reads them all)::

    munirank study-statements --replicates 50 --out stm [--part 0/2]
    munirank study-statements --worked-example --out dkex [--fit FOLDER]

The worked example fits ``dk-1999-2005`` (seed 1), or reuses ``--fit``, a fit folder of the same
data (checked by the data hash), and prints the statements beside the truth.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from munirank.errors import InputError
from munirank.input.read import data_hash
from munirank.input.spec import load_spec
from munirank.output import destinations
from munirank.posterior import sets
from munirank.posterior import statements as st

LEVEL = 0.9
K_TOP = 10
RELAXED_RHAT, RELAXED_ESS = 1.02, 100  # a looser gate, reported beside the package's own
RESULTS, SCRATCH, SUMMARY = "results", "work", "summary.txt"


@dataclass(frozen=True)
class StudySettings:
    """How the replicates are simulated and fitted.

    Attributes
    ----------
    n_municipalities : int
        Municipalities of each register (500 down to 10 spells, geometric sizes).
    draws, chains : int
        Posterior draws per chain and chains.
    tune : int or None
        Tuning steps (default: the package's for the sampler).
    """

    n_municipalities: int = 60
    draws: int = 1000
    tune: int | None = None
    chains: int = 4


def register_options(n_municipalities: int) -> dict:
    """A tiny-preset override: municipalities from 500 down to 10 spells, top_k = 10."""
    sizes = np.geomspace(500, 10, n_municipalities).round().astype(int)
    named = tuple((f"M{i:02d}", int(n)) for i, n in enumerate(sizes, start=1))
    return {"named_counts": named, "top_k": K_TOP}


def edf_error(estimate: np.ndarray, truth: np.ndarray) -> float:
    """Mean absolute difference of the sorted values (Wasserstein-1 between the EDFs)."""
    return float(np.mean(np.abs(np.sort(estimate) - np.sort(truth))))


def evaluate(result: Any, truth: pd.DataFrame) -> dict:
    """Coverage of sets and tiers and GR/posterior-mean errors for one fitted replicate."""
    table = result.municipalities.set_index("municipality")
    truth = truth.set_index("municipality").loc[table.index]
    ranks = result.tree["derived"]["rank"]
    true_rank = truth["true_rank"].to_numpy()
    true_eff = truth["true_effect_months"].to_numpy()
    n = len(truth)
    row: dict = {}
    for tail, true_set in (("top", set(truth.index[true_rank <= K_TOP])),
                           ("bottom", set(truth.index[true_rank > n - K_TOP]))):
        contains = sets.credible_set(ranks, k=K_TOP, ci_prob=LEVEL, tail=tail)
        each = sets.each_set(ranks, k=K_TOP, ci_prob=LEVEL, tail=tail)
        row |= {f"{tail}_covered": true_set <= set(contains.members),
                f"{tail}_size": len(contains.members),
                f"{tail}_probability": contains.probability,
                f"{tail}_proved_minimal": contains.proved_minimal,
                f"{tail}_each_size": len(each.members),
                f"{tail}_each_correct": set(each.members) <= true_set}
    tiering = sets.tiers(ranks, ci_prob=LEVEL).set_index("municipality")
    tier_of = tiering.loc[table.index, "tier"].to_numpy()
    row["n_tiers"] = int(tier_of.max())
    row["tiers_respected"] = bool(all(
        true_rank[tier_of == t].max() < true_rank[tier_of == t + 1].min()
        for t in range(1, row["n_tiers"])))
    pm_rank = table["effect_months_mean"].rank(method="first").to_numpy()
    row |= {
        "rank_mse_gr": float(np.mean((table["rank_gr"].to_numpy() - true_rank) ** 2)),
        "rank_mse_pm": float(np.mean((pm_rank - true_rank) ** 2)),
        "rank_mse_rbar": float(np.mean((table["rank_mean"].to_numpy() - true_rank) ** 2)),
        "effect_mse_gr": float(np.mean((table["effect_months_gr"].to_numpy() - true_eff) ** 2)),
        "effect_mse_pm": float(np.mean((table["effect_months_mean"].to_numpy() - true_eff) ** 2)),
        "edf_error_gr": edf_error(table["effect_months_gr"].to_numpy(), true_eff),
        "edf_error_pm": edf_error(table["effect_months_mean"].to_numpy(), true_eff),
        "sd_true": float(np.std(true_eff)),
        "sd_gr": float(np.std(table["effect_months_gr"])),
        "sd_pm": float(np.std(table["effect_months_mean"])),
    }
    return row


def run_replicate(rep: int, scratch: Path, settings: StudySettings) -> dict:
    """Simulate, fit and evaluate replicate ``rep`` (its folders are removed afterwards)."""
    from munirank.benchmark import fit
    from munirank.simulation.register import simulate

    sim = simulate("tiny", seed=1000 + rep, out=scratch / f"sim{rep}", overwrite=True,
                   **register_options(settings.n_municipalities))
    t0 = time.perf_counter()
    result = fit(sim / "spells.csv", spec=sim / "spec.toml", out=scratch / f"fit{rep}",
                 draws=settings.draws, tune=settings.tune, chains=settings.chains, seed=rep,
                 progressbar=False, overwrite=True)
    d = result.diagnostics
    row = {"replicate": rep, "converged": result.converged, "rhat_max": d["rhat_max"],
           "ess_bulk_min": d["ess_bulk_min"], "divergences": d["divergences"],
           "relaxed": d["rhat_max"] <= RELAXED_RHAT and d["ess_bulk_min"] >= RELAXED_ESS
           and d["divergences"] == 0,
           "fit_seconds": round(time.perf_counter() - t0, 1),
           **evaluate(result, pd.read_csv(sim / "truth.csv", dtype={"municipality": str}))}
    shutil.rmtree(sim)
    shutil.rmtree(scratch / f"fit{rep}")
    return row


def summarise(results: pd.DataFrame) -> str:
    """The acceptance figures, as text."""
    conv = results[results["converged"]]
    relaxed = results[results["relaxed"]]
    lines = [f"replicates: {len(results)}, converged (package gate: R-hat <= 1.01, bulk ESS >= "
             f"400, no divergences): {len(conv)}, relaxed gate (R-hat <= {RELAXED_RHAT}, ESS >= "
             f"{RELAXED_ESS}): {len(relaxed)}; divergences in {(results['divergences'] > 0).sum()}"
             f"; R-hat max median {results['rhat_max'].median():.3f}, bulk ESS min median "
             f"{results['ess_bulk_min'].median():.0f}"]
    for name, df in (("all", results), ("relaxed", relaxed), ("converged", conv)):
        if df.empty:
            continue
        lines += [
            f"[{name}] 0.9 top-10 'contains' set holds the true top 10: "
            f"{df['top_covered'].mean():.3f} ({df['top_covered'].sum()}/{len(df)}); "
            f"bottom 10: {df['bottom_covered'].mean():.3f}; mean size top "
            f"{df['top_size'].mean():.1f}, bottom {df['bottom_size'].mean():.1f}; proved minimal "
            f"{df['top_proved_minimal'].mean():.2f}",
            f"[{name}] 'each' sets all truly top 10: {df['top_each_correct'].mean():.3f} (mean "
            f"size {df['top_each_size'].mean():.1f}); bottom: "
            f"{df['bottom_each_correct'].mean():.3f} (mean size "
            f"{df['bottom_each_size'].mean():.1f})",
            f"[{name}] tiers: mean {df['n_tiers'].mean():.2f}, true order respects them in "
            f"{df['tiers_respected'].mean():.3f}",
            f"[{name}] mean squared rank error: GR {df['rank_mse_gr'].mean():.2f}, ranks of "
            f"posterior means {df['rank_mse_pm'].mean():.2f}, posterior mean ranks "
            f"{df['rank_mse_rbar'].mean():.2f}",
            f"[{name}] mean squared effect error (months^2): GR {df['effect_mse_gr'].mean():.3f}, "
            f"posterior mean {df['effect_mse_pm'].mean():.3f}",
            f"[{name}] EDF error (W1, months): GR {df['edf_error_gr'].mean():.3f}, posterior mean "
            f"{df['edf_error_pm'].mean():.3f}; SD of effects: true {df['sd_true'].mean():.2f}, GR "
            f"{df['sd_gr'].mean():.2f}, posterior mean {df['sd_pm'].mean():.2f}",
        ]
    lines.append(f"fit seconds: median {results['fit_seconds'].median():.1f}, "
                 f"total {results['fit_seconds'].sum():.0f}")
    return "\n".join(lines)


def _results(root: Path) -> pd.DataFrame:
    """Every finished replicate in the results files under ``root``."""
    files = sorted((root / RESULTS).glob("*.csv"))
    if not files:
        return pd.DataFrame({"replicate": []})
    return pd.concat([pd.read_csv(f) for f in files]).drop_duplicates("replicate")


def _part(part: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in part.split("/"))
    except ValueError:
        i, n = -1, 0
    if not 0 <= i < n:
        raise InputError(f"must be i/n with 0 <= i < n, not {part!r}", option="--part")
    return i, n


def study_statements(replicates: int, out: str | Path, *,
                     settings: StudySettings = StudySettings(), part: str = "0/1",
                     overwrite: bool = False, log: Any = None) -> str:
    """Run this part's missing replicates and summarise all finished ones.

    Parameters
    ----------
    replicates : int
        Number of replicates in the whole study.
    out : str or Path
        Output folder: ``results/part-I-of-N.csv`` (one row per replicate, appended as each
        finishes) and ``summary.txt``; simulated registers and fits live in ``work/`` while
        they run.
    settings : StudySettings
        How the replicates are simulated and fitted.
    part : str
        ``i/n``: run the replicates r with r % n == i (n processes can share the cores).
    overwrite : bool
        Write into a folder that holds files munirank did not write (they are kept).
    log : file-like, optional
        Where to print one line per finished replicate.

    Returns
    -------
    str
        The summary (also written to ``summary.txt``).

    Raises
    ------
    InputError
        On bad options or an ``out`` munirank may not write into.
    """
    if replicates < 1:
        raise InputError(f"must be at least 1, not {replicates}", option="--replicates")
    i, n = _part(part)
    root = Path(out)
    destinations.prepare_folder(root, command="study-statements", overwrite=overwrite)
    (root / RESULTS).mkdir(exist_ok=True)
    path = root / RESULTS / f"part-{i}-of-{n}.csv"
    done = set(_results(root)["replicate"])
    for rep in range(i, replicates, n):
        if rep in done:
            continue
        row = pd.DataFrame([run_replicate(rep, root / SCRATCH, settings)])
        row.to_csv(path, mode="a", header=not path.is_file(), index=False)
        if log is not None:
            print(f"replicate {rep}: {row.iloc[0].to_dict()}", file=log, flush=True)
    shutil.rmtree(root / SCRATCH, ignore_errors=True)
    summary = summarise(_results(root).sort_values("replicate"))
    (root / SUMMARY).write_text(summary + "\n")
    return summary


def worked_example(out: str | Path, *, fit_folder: str | Path | None = None,
                   overwrite: bool = False) -> str:
    """dk-1999-2005, seed 1, the default fit (or ``fit_folder``, a fit of it): the statements.

    Returns
    -------
    str
        The fit's diagnostics, the statements, how they compare with the truth and three
        pairwise sentences (also written to ``worked_example.txt``).
    """
    from munirank.benchmark import fit
    from munirank.simulation.register import simulate

    root = Path(out)
    destinations.prepare_folder(root, command="study-statements", overwrite=overwrite)
    sim = simulate("dk-1999-2005", seed=1, out=root / "sim", overwrite=True)
    if fit_folder is not None:  # a fit folder of exactly these data (checked by the data hash)
        folder = Path(fit_folder)
        run = json.loads((folder / "run.json").read_text())
        if run["data_hash"] != data_hash(sim / "spells.csv"):
            raise InputError("is not a fit of dk-1999-2005 seed 1", file=str(folder))
        result: Any = SimpleNamespace(
            municipalities=pd.read_csv(folder / "municipalities.csv",
                                       dtype={"municipality": str}),
            tree=xr.open_datatree(folder / "posterior.nc", engine="netcdf4"),
            diagnostics=json.loads((folder / "diagnostics.json").read_text()))
    else:
        folder = root / "fit"
        result = fit(sim / "spells.csv", spec=sim / "spec.toml", out=folder, progressbar=False,
                     overwrite=True)
    d = result.diagnostics
    spec = load_spec(sim / "spec.toml")
    results = st.statements_for(result.tree["derived"]["rank"].load(), top_k=spec.ranking.top_k,
                                ci_prob=spec.sampling.ci_prob, subset=spec.ranking.subset,
                                table=result.municipalities)
    truth = pd.read_csv(sim / "truth.csv", dtype={"municipality": str})
    names = result.municipalities["municipality"].head(3).tolist()
    text = "\n".join([
        f"fit: {d['wall_seconds']} s, converged {d['converged']} (R-hat {d['rhat_max']:.3f}, "
        f"bulk ESS {d['ess_bulk_min']:.0f}, {d['divergences']} divergences)",
        st.statements_text(results),
        f"truth vs statements: {evaluate(result, truth)}",
        *st.pairwise_sentences(sets.pairwise(folder, names))])
    (root / "worked_example.txt").write_text(text + "\n", encoding="utf-8")
    return text


def study_statements_command(args: argparse.Namespace) -> int:
    """``munirank study-statements``: run the study (or the worked example); print the summary."""
    if args.worked_example:
        print(worked_example(args.out, fit_folder=args.fit, overwrite=args.overwrite))
        return 0
    if args.replicates is None:
        raise InputError("is needed (or --worked-example)", option="--replicates")
    settings = StudySettings(n_municipalities=args.n_municipalities, draws=args.draws,
                             tune=args.tune, chains=args.chains)
    print(study_statements(args.replicates, args.out, settings=settings, part=args.part,
                           overwrite=args.overwrite, log=None if args.quiet else sys.stdout))
    return 0
