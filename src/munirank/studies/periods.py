r"""How often the period statements are right: a simulation study on ``dk-two-periods``.

Each replicate simulates two measurements with known correlated truth
(:mod:`munirank.simulation.periods`), fits them (``munirank fit``, ``[data] period``) and
pairs changes.csv with truth_changes.csv. Scored, pooled over municipalities and replicates
(the reliability bins and Brier score of :mod:`munirank.studies.replicates`):

- ``p_top10_both`` against "truly among the ten fastest in both periods" (and the bottom);
- ``p_improved`` against "truly faster in the second period";
- coverage of the ``change_months`` interval (at the fit's ``ci_prob``);
- the overlaps of periods.json against the true overlap of the two true top-k lists of the
  ranked set (the ``[ranking] subset``): how often the posterior interval holds it.

A calibrated probability p is right a share p of the times it is given (within the bins'
Monte Carlo error). Run with ``python -m munirank.studies.periods --replicates R --out DIR``
(or :func:`period_study`); it writes ``period_study.json`` and ``period_reliability.csv``.
Only aggregates are written; each replicate's folder is deleted after scoring.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from munirank.studies.replicates import brier, reliability_counts, reliability_table

PREDICTIONS = {"p_top{k}_both": "true_top{k}_both", "p_bottom{k}_both": "true_bottom{k}_both",
               "p_improved": "true_improved"}
"""changes.csv's probabilities and the truth_changes.csv columns they predict."""


def score_replicate(changes: pd.DataFrame, truth: pd.DataFrame, summary: dict[str, Any],
                    true_overlap: dict[str, int], k: int) -> dict[str, Any]:
    """One replicate's predictions paired with the truth (pure; module docstring)."""
    keys = ["municipality", "period_from", "period_to"]
    both = changes.astype({c: str for c in keys}).merge(truth.astype({c: str for c in keys}),
                                                        on=keys, validate="one_to_one")
    pairs = {p.format(k=k): t.format(k=k) for p, t in PREDICTIONS.items()}
    covered = ((both["change_months_lo"] <= both["true_change_months"])
               & (both["true_change_months"] <= both["change_months_hi"]))
    o = summary["overlap"][0]
    held = {tail: bool(o[tail]["posterior"]["interval"][0] <= true_overlap[tail]
                       <= o[tail]["posterior"]["interval"][1]) for tail in ("top", "bottom")}
    return {"predicted": {p: both[p].to_numpy(float).tolist() for p in pairs},
            "observed": {p: both[t].astype(bool).to_numpy().tolist() for p, t in pairs.items()},
            "change_coverage": float(covered.mean()), "overlap_interval_holds": held,
            "true_overlap": true_overlap,
            "point_overlap": {t: o[t]["point_estimates"] for t in ("top", "bottom")},
            "no_change_mean": {t: o[t]["no_change"]["mean"] for t in ("top", "bottom")}}


def true_overlaps(truth: pd.DataFrame, names: list[str], k: int, periods: tuple[str, str],
                  ) -> dict[str, int]:
    """How many of the true top (bottom) k of ``names`` in the first period are so in the second.

    ``truth`` is truth.csv (per municipality and period); ``names`` the ranked set of
    periods.json (the ``[ranking] subset``, or all), restricted to each period's municipalities.
    """
    lists = {}
    for period in periods:
        rows = truth[(truth["period"].astype(str) == period)
                     & truth["municipality"].isin(names)]
        order = rows.sort_values("true_effect_months", kind="stable")["municipality"]
        lists[period] = (set(order[:k]), set(order[-k:]))
    (top_a, bottom_a), (top_b, bottom_b) = lists[periods[0]], lists[periods[1]]
    return {"top": len(top_a & top_b), "bottom": len(bottom_a & bottom_b)}


def run_replicate(index: int, *, seed: int, scale: float, sampling: dict[str, Any],
                  scratch: Path) -> dict[str, Any]:
    """Simulate, fit and score one replicate in ``scratch`` (deleted afterwards)."""
    from munirank import api
    from munirank.input.spec import load_spec

    folder = scratch / f"rep_{index:04d}"
    try:
        api.simulate("dk-two-periods", seed=seed * 1000 + index, out=folder / "data",
                     scale=scale)
        result = api.fit(folder / "data" / "spells.csv", spec=folder / "data" / "spec.toml",
                         out=folder / "fit", progressbar=False, **sampling)
        spec = load_spec(folder / "data" / "spec.toml")
        k, codes = spec.ranking.top_k, {"municipality": str, "period_from": str,
                                        "period_to": str, "period": str}
        truth = pd.read_csv(folder / "data" / "truth_changes.csv", dtype=codes)
        changes = pd.read_csv(folder / "fit" / "changes.csv", dtype=codes)
        summary = json.loads((folder / "fit" / "periods.json").read_text())
        per_period = pd.read_csv(folder / "data" / "truth.csv", dtype=codes)
        names = list(spec.ranking.subset) or per_period["municipality"].unique().tolist()
        first = summary["overlap"][0]
        overlap = true_overlaps(per_period, names, k, (first["from"], first["to"]))
        scored = score_replicate(changes, truth, summary, overlap, k)
        return scored | {"replicate": index, "converged": result.converged}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def pooled(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Reliability bins and Brier scores of each probability, pooled over replicates."""
    out: dict[str, Any] = {"replicates": len(results), "tables": {}}
    for name in results[0]["predicted"]:
        p = np.concatenate([r["predicted"][name] for r in results])
        y = np.concatenate([r["observed"][name] for r in results]).astype(float)
        out["tables"][name] = reliability_table(reliability_counts(p, y), min_n=20)
        out[name] = {"brier": brier(p, y), "mean_predicted": float(p.mean()),
                     "observed_share": float(y.mean()), "n": int(len(p))}
    out["change_coverage"] = float(np.mean([r["change_coverage"] for r in results]))
    for tail in ("top", "bottom"):
        out[f"overlap_{tail}_interval_holds"] = float(np.mean(
            [r["overlap_interval_holds"][tail] for r in results]))
    out["converged"] = int(sum(r["converged"] for r in results))
    return out


def period_study(replicates: int, out: str | Path, *, seed: int = 1, scale: float = 1.0,
                 draws: int | None = None, tune: int | None = None,
                 chains: int | None = None) -> dict[str, Any]:
    """Run the study and write period_study.json and period_reliability.csv under ``out``.

    Parameters
    ----------
    replicates : int
        Registers to simulate and fit.
    out : str or Path
        Output folder (created; the two files are replaced).
    seed : int
        Seed of the study (replicate r simulates with seed ``seed * 1000 + r``).
    scale : float
        Size of each register relative to ``dk-two-periods``.
    draws, tune, chains : int, optional
        Sampling settings of the fits (default: the spec's).

    Returns
    -------
    dict
        What period_study.json holds.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sampling = {k: v for k, v in (("draws", draws), ("tune", tune), ("chains", chains))
                if v is not None}
    with tempfile.TemporaryDirectory(dir=out) as scratch:
        results = [run_replicate(i, seed=seed, scale=scale, sampling=sampling,
                                 scratch=Path(scratch)) for i in range(replicates)]
    summary = pooled(results)
    tables = summary.pop("tables")
    reliability = pd.concat([t.assign(probability=name) for name, t in tables.items()],
                            ignore_index=True)
    reliability.to_csv(out / "period_reliability.csv", index=False)
    record = summary | {"seed": seed, "scale": scale, "sampling": sampling,
                        "per_replicate": [{k: r[k] for k in ("replicate", "true_overlap",
                                                             "point_overlap", "no_change_mean",
                                                             "change_coverage", "converged")}
                                          for r in results]}
    (out / "period_study.json").write_text(json.dumps(record, indent=2) + "\n")
    return record


def _main() -> None:
    p = argparse.ArgumentParser(prog="python -m munirank.studies.periods")
    p.add_argument("--replicates", type=int, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--draws", type=int)
    p.add_argument("--tune", type=int)
    p.add_argument("--chains", type=int)
    a = p.parse_args()
    record = period_study(a.replicates, a.out, seed=a.seed, scale=a.scale, draws=a.draws,
                          tune=a.tune, chains=a.chains)
    print(json.dumps({k: v for k, v in record.items() if k != "per_replicate"}, indent=2))


if __name__ == "__main__":
    _main()
