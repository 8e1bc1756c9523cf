"""``munirank compare``: the AKF-style frequentist benchmark side by side with the Bayesian one.

One output folder, written atomically: everything ``munirank fit`` writes, plus

- frequentist.csv / frequentist.json: the fixed-effects benchmark
  (:mod:`munirank.established.frequentist`) per municipality, and how it was fitted;
- comparison.csv: per municipality the frequentist columns next to the Bayesian ones, and
  three flags a methodologist cares about (the frequentist verdict the posterior does not
  support): ``flag_starred_fast_not_credible`` (ranked, starred, faster than average, but
  P(faster) < 0.9), ``flag_top{k}_not_credible`` (frequentist top k but P(top k) < 0.5),
  ``flag_excluded_but_extreme`` (dropped by the cut-off but P(top k) or P(bottom k) >= 0.5);
- comparison_summary.txt: the same in a few sentences (also printed by the command);
- truth_scores.json, when truth.csv lies next to the data (simulated registers): how many of
  the true top k each method puts in its top k, and each method's RMSE in effect months.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from munirank.benchmark import FitResult, command_inputs, fit, resolve_spec
from munirank.errors import EXIT_OK, EXIT_UNCONVERGED
from munirank.established import frequentist
from munirank.input.cells import fit_only
from munirank.input.episodes import load_episodes
from munirank.input.spec import Spec, check_spec
from munirank.input.truth import read_truth
from munirank.output import destinations, files
from munirank.output.disclosure import blank_small_counts

P_FASTER, P_SET = 0.9, 0.5  # thresholds of the flags


@dataclass(frozen=True)
class CompareResult:
    """What :func:`compare` produced (the same content as its output folder)."""

    out: Path
    fit: FitResult
    frequentist: pd.DataFrame
    comparison: pd.DataFrame
    summary: str
    truth_scores: dict[str, Any] | None

    @property
    def converged(self) -> bool:
        """Whether the Bayesian run passed the convergence gate."""
        return self.fit.converged


def comparison_table(freq: pd.DataFrame, bayes: pd.DataFrame, *, top_k: int) -> pd.DataFrame:
    """Frequentist and Bayesian columns per municipality, with the three flags.

    Parameters
    ----------
    freq : pandas.DataFrame
        :func:`munirank.established.frequentist.benchmark_table` output.
    bayes : pandas.DataFrame
        The municipalities.csv table of the Bayesian fit (counts already blanked).
    top_k : int
        Size of the top and bottom sets.

    Returns
    -------
    pandas.DataFrame
        The comparison.csv columns, sorted by frequentist rank, then Bayesian mean rank.
    """
    k = top_k
    b = bayes.set_index("municipality")
    f = freq.set_index("municipality").loc[b.index]
    out = pd.DataFrame({"municipality": b.index, "n_spells": b["n_spells"].to_numpy(),
                        "n_events": b["n_events"].to_numpy(),
                        "small_cell": b["small_cell"].to_numpy()})
    for col in ("freq_log_hr", "freq_log_hr_se", "freq_effect_months", "freq_se", "freq_p",
                "freq_stars", "freq_rank", "in_cutoff"):
        out[col] = f[col].to_numpy()
    for col in ("effect_months_mean", "effect_months_lo", "effect_months_hi", "rank_mean",
                "rank_lo", "rank_hi"):
        out[f"bayes_{col}"] = b[col].to_numpy()
    for col in (f"p_top{k}", f"p_bottom{k}", "p_faster"):
        out[col] = b[col].to_numpy()
    ranked = out["freq_rank"].notna().to_numpy()
    fast = (out["freq_stars"] != "") & (out["freq_effect_months"] < 0) & ranked
    out["flag_starred_fast_not_credible"] = fast & (out["p_faster"] < P_FASTER)
    out[f"flag_top{k}_not_credible"] = (out["freq_rank"] <= k).fillna(False).astype(bool) & (
        out[f"p_top{k}"] < P_SET)
    extreme = (out[f"p_top{k}"] >= P_SET) | (out[f"p_bottom{k}"] >= P_SET)
    out["flag_excluded_but_extreme"] = ~out["in_cutoff"].astype(bool) & extreme
    out = out.sort_values(["freq_rank", "bayes_rank_mean", "municipality"], na_position="last",
                          kind="stable").reset_index(drop=True)
    out.attrs["top_k"] = k
    return out


def _spearman(a: pd.Series, b: pd.Series) -> float:
    ok = a.notna() & b.notna()
    if ok.sum() < 3:
        return float("nan")
    return float(stats.spearmanr(a[ok].astype(float), b[ok].astype(float)).statistic)


def summary_text(comp: pd.DataFrame, freq: pd.DataFrame, *, cutoff: int | None,
                 fit_seconds: float, truth: dict[str, Any] | None = None) -> str:
    """A few plain sentences comparing the two rankings (comparison_summary.txt)."""
    k = comp.attrs["top_k"]
    ranked = comp[comp["freq_rank"].notna()]
    top = ranked[ranked["freq_rank"] <= k]
    starred = ranked[(ranked["freq_stars"] != "") & (ranked["freq_effect_months"] < 0)]
    dropped = comp[~comp["in_cutoff"].astype(bool) & comp["freq_effect_months"].notna()]
    n_not_est = int((~freq["freq_estimable"]).sum())
    rule = f"more than {cutoff} spells" if cutoff is not None else "no cut-off"
    lines = [
        "Frequentist (fixed-effects Weibull PH by ML, lifelines; delta-method SEs; stars "
        "*** p<0.05, ** p<0.10, * p<0.20) vs Bayesian (partially pooled Weibull PH).",
        f"Municipalities: {len(comp)}; not estimable by ML (no events): {n_not_est}; "
        f"ranked by the frequentist rule ({rule}): {len(ranked)}. "
        f"ML fit {fit_seconds:.1f} s.",
        f"Top-{k} placings credible: {int((top[f'p_top{k}'] >= P_SET).sum())} of {len(top)} "
        f"frequentist top-{k} municipalities have P(top {k}) >= {P_SET}.",
        f"Starred as faster than average: {len(starred)}; of these "
        f"{int((starred['p_faster'] >= P_FASTER).sum())} have P(faster) >= {P_FASTER}.",
        f"Rank correlation (Spearman, effect in months) frequentist vs Bayesian: "
        f"{_spearman(ranked['freq_effect_months'], ranked['bayes_effect_months_mean']):.3f} "
        f"over the {len(ranked)} ranked, "
        f"{_spearman(comp['freq_effect_months'], comp['bayes_effect_months_mean']):.3f} over all "
        "estimable.",
        _dropped_sentence(dropped, k),
        "Flags: " + ", ".join(f"{c} {int(comp[c].sum())}"
                             for c in comp.columns if c.startswith("flag_")) + ".",
    ]
    if truth is not None:
        lines.append(_truth_sentence(truth))
    return "\n".join(lines) + "\n"


def _dropped_sentence(dropped: pd.DataFrame, k: int) -> str:
    if dropped.empty:
        return "The cut-off dropped no municipality."
    r = dropped["bayes_rank_mean"]
    extreme = dropped[dropped["flag_excluded_but_extreme"]]
    names = ", ".join(extreme["municipality"].astype(str).head(10))
    return (f"The cut-off dropped {len(dropped)} estimable municipalities; their Bayesian mean "
            f"ranks run from {r.min():.0f} to {r.max():.0f} (median {r.median():.0f}); "
            f"{int((dropped[f'p_top{k}'] >= P_SET).sum())} would be top {k} and "
            f"{int((dropped[f'p_bottom{k}'] >= P_SET).sum())} bottom {k} with probability >= "
            f"{P_SET}" + (f" ({names})." if names else "."))


def _truth_sentence(t: dict[str, Any]) -> str:
    k, b, f, fa = t["top_k"], t["bayes"], t["frequentist"], t["frequentist_no_cutoff"]
    return (f"Against the simulated truth: true top {k} found in the top {k} - Bayesian "
            f"{b['top_k_found']}, frequentist {f['top_k_found']} (without cut-off "
            f"{fa['top_k_found']}); RMSE of the effect in months over the estimable "
            f"municipalities - Bayesian {b['rmse_common']:.2f}, frequentist "
            f"{f['rmse_common']:.2f}; over the ranked - Bayesian {b['rmse_in_cutoff']:.2f}, "
            f"frequentist {f['rmse_in_cutoff']:.2f}.")


def _rmse(est: pd.Series, true: pd.Series, mask: pd.Series) -> float:
    ok = mask & est.notna()
    return float(np.sqrt(np.mean((est[ok].astype(float) - true[ok]) ** 2))) if ok.any() else np.nan


def truth_scores(comp: pd.DataFrame, freq: pd.DataFrame, truth: pd.DataFrame) -> dict[str, Any]:
    """Each method scored against the simulated truth.

    ``top_k_found``: how many of the true top k the method puts in its top k (Bayesian: the
    k lowest posterior mean ranks; frequentist: rank <= k under the cut-off rule, and without
    it). ``rmse_*``: root mean squared error of the effect in months, over all municipalities
    with an estimate (``rmse_all``), over those estimable by ML (``rmse_common``, the same set
    for both) and over those the frequentist rule ranks (``rmse_in_cutoff``).
    """
    k = comp.attrs["top_k"]
    t = truth.set_index("municipality").loc[comp["municipality"]].reset_index()
    true_top = set(t.loc[t["true_rank"] <= k, "municipality"])
    f = freq.set_index("municipality").loc[comp["municipality"]].reset_index()
    true_eff = t["true_effect_months"]
    common = f["freq_estimable"].astype(bool)
    ranked = comp["freq_rank"].notna()
    bayes_top = set(comp.sort_values(["bayes_rank_mean", "municipality"])["municipality"][:k])
    methods = {"bayes": (comp["bayes_effect_months_mean"], bayes_top),
               "frequentist": (comp["freq_effect_months"],
                               set(comp.loc[comp["freq_rank"] <= k, "municipality"])),
               "frequentist_no_cutoff": (f["freq_effect_months"],
                                         set(f.loc[f["freq_rank_all"] <= k, "municipality"]))}
    scores: dict[str, Any] = {"top_k": k, "n_municipalities": len(comp)}
    for name, (est, top) in methods.items():
        scores[name] = {
            "top_k_found": len(top & true_top), "top_k_share": len(top & true_top) / k,
            "rmse_all": _rmse(est, true_eff, pd.Series(True, index=est.index)),
            "rmse_common": _rmse(est, true_eff, common),
            "rmse_in_cutoff": _rmse(est, true_eff, ranked),
            "spearman_truth": _spearman(est, true_eff)}
    return scores


def _frequentist_csv(freq: pd.DataFrame, min_cell: int) -> pd.DataFrame:
    out = blank_small_counts(freq, min_cell=min_cell)
    first = ["municipality", "n_spells", "n_events", "small_cell"]
    return out[first + [c for c in out.columns if c not in first]]


def compare(data: str | Path, *, spec: str | Path | Spec, out: str | Path,
            cutoff: int | None = frequentist.CUTOFF, min_cell: int | None = None,
            progressbar: bool = True, overwrite: bool = False,
            **sampling: Any) -> CompareResult:
    """Fit both methods on the same episodes and write them side by side (``munirank compare``).

    Parameters
    ----------
    data : str or Path
        Spell file (.csv, .parquet, .dta, .sas7bdat).
    spec : str, Path or Spec
        The SPEC.toml file (or a loaded spec).
    out : str or Path
        Output folder (see the module docstring). Written only when complete.
    cutoff : int or None
        The frequentist ranks only municipalities with more spells than this (AKF: 80);
        None ranks all.
    min_cell : int, optional
        Override the spec's ``[disclosure] min_cell``: smaller counts are blanked.
    progressbar : bool
        Show sampling progress.
    overwrite : bool
        Write into a folder that holds files munirank did not write (they are kept; see
        :mod:`munirank.output.destinations`).
    **sampling
        ``draws``, ``tune``, ``chains``, ``seed``, ``sampler``, ``method``, ``ci_prob``.

    Returns
    -------
    CompareResult
        Both tables, the summary and the truth scores. Check ``converged``.

    Raises
    ------
    InputError
        On bad data or spec; nothing is written.
    """
    inputs = command_inputs(data, spec)
    destinations.claim_folder(out, overwrite=overwrite, inputs=inputs)
    spec_obj, spec_file = resolve_spec(spec)
    spec_obj = spec_obj.with_sampling(**sampling)
    if min_cell is not None:
        spec_obj = replace(spec_obj, disclosure=replace(spec_obj.disclosure, min_cell=min_cell))
    check_spec(spec_obj, file=spec_file)
    fit_only(spec_obj, "compare", file=spec_file)
    episodes = load_episodes(data, spec_obj)
    t0 = time.perf_counter()
    freq = frequentist.benchmark(episodes, cutoff=cutoff)
    freq_seconds = time.perf_counter() - t0
    with destinations.atomic_folder(out, command="compare", overwrite=overwrite,
                                    inputs=inputs) as tmp:
        bayes = fit(data, spec=spec, out=tmp / "_fit", min_cell=min_cell,
                    progressbar=progressbar, **sampling)
        for path in (tmp / "_fit").iterdir():
            shutil.move(path, tmp / path.name)
        (tmp / "_fit").rmdir()
        result = _write_comparison(tmp, freq, bayes, spec_obj, data, cutoff, freq_seconds)
    return CompareResult(out=Path(out), fit=bayes, **result)


def _write_comparison(tmp: Path, freq: pd.DataFrame, bayes: FitResult, spec: Spec,
                      data: str | Path, cutoff: int | None, seconds: float) -> dict[str, Any]:
    comp = comparison_table(freq, bayes.municipalities, top_k=spec.ranking.top_k)
    truth = read_truth(data, group=spec.data.group,
                       municipalities=comp["municipality"].astype(str).tolist())
    scores = truth_scores(comp, freq, truth) if truth is not None else None
    summary = summary_text(comp, freq, cutoff=cutoff, fit_seconds=seconds, truth=scores)
    files.write_csv(_frequentist_csv(freq, spec.disclosure.min_cell), tmp / "frequentist.csv")
    files.write_json({**freq.attrs, "fit_seconds": round(seconds, 3),
                        "n_estimable": int(freq["freq_estimable"].sum()),
                        "municipal_covariates": "not used: collinear with the fixed effects"},
                       tmp / "frequentist.json")
    files.write_csv(comp, tmp / "comparison.csv")
    (tmp / "comparison_summary.txt").write_text(summary)
    if scores is not None:
        files.write_json(scores, tmp / "truth_scores.json")
    return {"frequentist": freq, "comparison": comp, "summary": summary, "truth_scores": scores}


def compare_command(args: argparse.Namespace) -> int:
    """``munirank compare``: run :func:`compare` from parsed arguments; return the exit code."""
    result = compare(args.data, spec=args.spec, out=args.out,
                     cutoff=None if args.no_cutoff else args.cutoff, min_cell=args.min_cell,
                     progressbar=not args.quiet, overwrite=args.overwrite, draws=args.draws,
                     tune=args.tune, chains=args.chains, seed=args.seed, sampler=args.sampler,
                     method=args.method, ci_prob=args.ci_prob)
    print(result.summary, end="")
    print(f"-> {result.out}")
    if not result.converged:
        d = result.fit.diagnostics
        print(f"munirank: warning: NOT CONVERGED ({d.get('criteria')}); outputs are flagged "
              "converged=false", file=sys.stderr)
        return EXIT_OK if args.allow_unconverged else EXIT_UNCONVERGED
    return EXIT_OK
