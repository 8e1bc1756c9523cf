"""Plain-language statements from the computations of :mod:`munirank.posterior.sets`.

Sets, tiers, rank tables and pairwise probabilities are computed there, from the draws; here
they are assembled per ranking (all municipalities, and the named subset), worded, and written
as credible_sets.csv, tiers.csv, rank_probabilities.csv, pairwise.csv and statements.txt;
``munirank pairwise`` (:func:`pairwise_command`) words a finished fit folder. The wording is
the same in statements.txt, on the command line and in the report:

- rank 1 = fastest; "faster" means a shorter time to the outcome (a more negative effect);
- every probability is a posterior probability, printed with two decimals;
- a set, tiering or order is "credible at p" when its posterior probability is at least p.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import xarray as xr

from munirank.errors import InputError
from munirank.input.spec import Spec
from munirank.output import destinations, files
from munirank.posterior.sets import (
    DIM,
    CredibleSet,
    credible_set,
    each_set,
    effect_draws,
    pairwise_table,
    rank_table,
    tail_probability,
    tiers,
    within,
)

PAIRWISE_HEAD = "Pairwise comparisons (posterior probabilities; the table is in pairwise.csv):"


def pairwise_sentences(table: pd.DataFrame) -> list[str]:
    """One sentence per ordered pair of :func:`munirank.posterior.sets.pairwise`'s table."""
    return [f"{a} is faster than {b} with probability {table.loc[a, b]:.2f}."
            for a in table.index for b in table.columns if a != b]


def pairwise_verdict(table: pd.DataFrame, ci_prob: float) -> str:
    """Which orders of a pairwise table are credible at ``ci_prob``, in one sentence.

    Parameters
    ----------
    table : pandas.DataFrame
        P(row faster than column), as :func:`munirank.posterior.sets.pairwise` returns it.
    ci_prob : float
        "A is faster than B" is credible when its probability is at least ``ci_prob``.

    Returns
    -------
    str

    Examples
    --------
    >>> t = pd.DataFrame([[0.0, 0.95], [0.05, 0.0]], index=["A", "B"], columns=["A", "B"])
    >>> pairwise_verdict(t, 0.9)
    'Credible at probability 0.90: A is faster than B.'
    """
    pairs = [f"{a} is faster than {b}" for a in table.index for b in table.columns
             if a != b and table.loc[a, b] >= ci_prob - 1e-12]
    if not pairs:
        return (f"No order among {_names([str(m) for m in table.index])} is credible at "
                f"probability {ci_prob:.2f}.")
    return f"Credible at probability {ci_prob:.2f}: {'; '.join(pairs)}."


def pairwise_lines(table: pd.DataFrame, ci_prob: float) -> list[str]:
    """One sentence per ordered pair, then the verdict at ``ci_prob``."""
    return [*pairwise_sentences(table), pairwise_verdict(table, ci_prob)]


@dataclass(frozen=True)
class RankingStatements:
    """Sets, tiers, rank distribution and sentences for one ranking (all, or a subset)."""

    scope: str
    n_ranked: int
    top_k: int
    ci_prob: float
    sets: tuple[CredibleSet, ...]
    tiers: pd.DataFrame
    ranks: pd.DataFrame
    sentences: tuple[str, ...]
    details: tuple[str, ...]


def ranking_statements(ranks: xr.DataArray, *, top_k: int = 10, ci_prob: float = 0.9,
                       scope: str = "all", table: pd.DataFrame | None = None,
                       n_named: int = 5) -> RankingStatements:
    """All statements about one ranking, from its rank draws.

    Parameters
    ----------
    ranks : xarray.DataArray
        Rank draws (chain, draw, municipality), 1 = fastest (see :func:`within` for a subset).
    top_k : int
        Size of the top and bottom sets.
    ci_prob : float
        Probability level of every set, tiering and interval.
    scope : str
        ``"all"`` or ``"subset"``; worded into the sentences.
    table : pandas.DataFrame, optional
        municipalities.csv; adds each municipality's effect in months to its detail line.
    n_named : int
        At most this many "X is among the k fastest" sentences per tail (those >= 0.5; none
        when k is more than half the municipalities, where they say little).

    Returns
    -------
    RankingStatements
    """
    k = min(top_k, ranks.sizes[DIM])
    sets = tuple(f(ranks, k=k, ci_prob=ci_prob, tail=t)
                 for t in ("top", "bottom") for f in (credible_set, each_set))
    rt = rank_table(ranks, ci_prob=ci_prob)
    n_ranked = ranks.sizes[DIM]
    p = {t: tail_probability(ranks, k=k, tail=t) for t in ("top", "bottom")}
    tiering = tiers(ranks, ci_prob=ci_prob)
    where = "" if scope == "all" else f" of the {n_ranked} in the subset"
    sentences = [*(_set_sentence(s, where, p[s.tail]) for s in sets),
                 _tier_sentence(tiering, where),
                 *(_named_sentences(p, k, where, n_named) if 2 * k <= n_ranked else [])]
    details = _detail_lines(rt, p, k, ci_prob, table if scope == "all" else None)
    return RankingStatements(scope=scope, n_ranked=n_ranked, top_k=k, ci_prob=ci_prob,
                             sets=sets, tiers=tiering, ranks=rt, sentences=tuple(sentences),
                             details=tuple(details))


WORD = {"top": "fastest", "bottom": "slowest"}


def _names(members: Sequence[str]) -> str:
    return ", ".join(members[:-1]) + f" and {members[-1]}" if len(members) > 1 else members[0]


def _set_sentence(s: CredibleSet, where: str, p: pd.Series) -> str:
    word = WORD[s.tail]
    if s.kind == "contains":
        note = f" (no smaller set reaches {s.ci_prob:.2f})" if s.proved_minimal else ""
        return (f"With probability {s.probability:.2f}, the {s.k} {word} municipalities{where} "
                f"are all among these {len(s.members)}{note}: {_names(s.members)}.")
    if not s.members:
        best = p.idxmax()
        return (f"No municipality{where} is among the {s.k} {word} with probability "
                f"{s.ci_prob:.2f} or more; the most likely is {best} ({p[best]:.2f}).")
    if len(s.members) == 1:
        return (f"{s.members[0]} is among the {s.k} {word}{where} with probability "
                f"{p[s.members[0]]:.2f}.")
    return (f"{_names(s.members)} are each among the {s.k} {word}{where} with probability "
            f"at least {s.ci_prob:.2f}; all {len(s.members)} together with probability "
            f"{s.probability:.2f}.")


def _tier_label(group: pd.DataFrame) -> str:
    if len(group) <= 8:
        return _names(group["municipality"].tolist())
    return (f"{len(group)} municipalities ({group['municipality'].iloc[0]} to "
            f"{group['municipality'].iloc[-1]} by mean rank)")


def _tier_sentence(tiering: pd.DataFrame, where: str) -> str:
    ci = tiering.attrs["ci_prob"]
    n_tiers = int(tiering["tier"].max())
    if n_tiers == 1:
        return (f"No split into tiers is credible at probability {ci:.2f}: no group of "
                f"municipalities{where} is faster than all the others with that probability.")
    parts = "; ".join(f"tier {t}: {_tier_label(g)}" for t, g in tiering.groupby("tier"))
    return (f"The {len(tiering)} municipalities{where} fall into {n_tiers} tiers; with "
            f"probability {tiering.attrs['tiering_probability']:.2f} every municipality of "
            f"each tier is faster than every one of the next, while the order within a tier is "
            f"not credible at {ci:.2f} ({parts}).")


def _named_sentences(p: dict[str, pd.Series], k: int, where: str, n_named: int) -> list[str]:
    out = []
    for tail, probs in p.items():
        likely = probs[probs >= 0.5].sort_values(ascending=False, kind="stable")[:n_named]
        out += [f"{m} is among the {k} {WORD[tail]}{where} with probability {v:.2f}."
                for m, v in likely.items()]
    return out


def _detail_lines(rt: pd.DataFrame, p: dict[str, pd.Series], k: int, ci_prob: float,
                  table: pd.DataFrame | None) -> list[str]:
    n = len(rt)
    eff = table.set_index("municipality") if table is not None else None
    lines = []
    for r in rt.itertuples():
        lo, hi = (round(v * (n + 1) / 100) for v in (r.percentile_lo, r.percentile_hi))
        line = (f"{r.municipality}: expected rank {r.rank_mean:.1f} of {n} (percentile "
                f"{r.percentile_mean:.0f}, 0 = fastest); rank {lo} to {hi} with probability "
                f"{ci_prob:.2f}; among the {k} fastest with probability "
                f"{p['top'][r.municipality]:.2f}, among the {k} slowest with probability "
                f"{p['bottom'][r.municipality]:.2f}")
        if eff is not None and r.municipality in eff.index:
            e = eff.loc[r.municipality]
            line += (f"; effect {e['effect_months_mean']:+.1f} months ({ci_prob:.2f} interval "
                     f"{e['effect_months_lo']:+.1f} to {e['effect_months_hi']:+.1f}), faster "
                     f"than expected with probability {e['p_faster']:.2f}")
        lines.append(line + ".")
    return lines


def sets_table(results: Sequence[RankingStatements]) -> pd.DataFrame:
    """credible_sets.csv: one row per set, members joined by "; " in order of P(top k)."""
    rows = [{"scope": r.scope, "n_ranked": r.n_ranked, "tail": s.tail, "kind": s.kind,
             "k": s.k, "ci_prob": s.ci_prob, "probability": s.probability,
             "size": len(s.members), "proved_minimal": s.proved_minimal,
             "municipalities": "; ".join(s.members)}
            for r in results for s in r.sets]
    return pd.DataFrame(rows)


def statements_for(ranks: xr.DataArray, *, top_k: int, ci_prob: float,
                   subset: Sequence[str] = (),
                   table: pd.DataFrame | None = None) -> list[RankingStatements]:
    """Statements among all municipalities and, if ``subset`` is given, within it."""
    out = [ranking_statements(ranks, top_k=top_k, ci_prob=ci_prob, table=table)]
    if subset:
        out.append(ranking_statements(within(ranks, subset), top_k=top_k, ci_prob=ci_prob,
                                      scope="subset"))
    return out


def write_statements(tree_or_derived: xr.DataTree | xr.Dataset, table: pd.DataFrame,
                     spec: Spec, folder: str | Path) -> list[RankingStatements]:
    """Write credible_sets.csv, tiers.csv, rank_probabilities.csv, statements.txt (pairwise.csv).

    Parameters
    ----------
    tree_or_derived : xarray.DataTree or xarray.Dataset
        The result tree (its ``derived`` group is used) or the derived draws with ``rank``.
    table : pandas.DataFrame
        municipalities.csv, for the effects quoted in the detail lines.
    spec : Spec
        ``ranking.top_k``, ``ranking.subset``, ``ranking.pairwise`` and ``sampling.ci_prob``
        are used.
    folder : str or Path
        Output folder; with a subset, ``rank_probabilities_subset.csv`` is written too, and
        with ``ranking.pairwise``, ``pairwise.csv`` (P(row faster than column); the draws
        must hold ``effect_months``) and the pairwise sentences in statements.txt.

    Returns
    -------
    list of RankingStatements
        Among all, then within the subset (if any).
    """
    derived = (tree_or_derived["derived"].dataset if isinstance(tree_or_derived, xr.DataTree)
               else tree_or_derived)
    folder = Path(folder)
    results = statements_for(derived["rank"], top_k=spec.ranking.top_k,
                             ci_prob=spec.sampling.ci_prob, subset=spec.ranking.subset,
                             table=table)
    files.write_csv(sets_table(results), folder / "credible_sets.csv")
    tier_rows = [r.tiers.assign(scope=r.scope) for r in results]
    files.write_csv(pd.concat(tier_rows, ignore_index=True)[["scope", *results[0].tiers]],
                      folder / "tiers.csv")
    for r in results:
        name = "rank_probabilities.csv" if r.scope == "all" else "rank_probabilities_subset.csv"
        files.write_csv(r.ranks, folder / name)
    pairwise = list(dict.fromkeys(spec.ranking.pairwise))
    lines: list[str] = []
    if pairwise:
        pair_table = pairwise_table(derived["effect_months"], pairwise)
        files.write_csv(pair_table.reset_index(), folder / "pairwise.csv")
        lines = pairwise_lines(pair_table, spec.sampling.ci_prob)
    (folder / "statements.txt").write_text(statements_text(results, pairwise=lines),
                                           encoding="utf-8")
    return results


def statements_text(results: Sequence[RankingStatements], *,
                    pairwise: Sequence[str] = ()) -> str:
    """The plain-language statements, one per line, then one detail line per municipality.

    Parameters
    ----------
    results : sequence of RankingStatements
        Among all, then within the subset (if any).
    pairwise : sequence of str, optional
        Lines of :func:`pairwise_lines`, appended under a heading as a last block.

    Returns
    -------
    str
        The text of statements.txt.
    """
    lines = []
    for r in results:
        head = ("Among all" if r.scope == "all" else "Within the named subset of")
        lines += [f"{head} {r.n_ranked} municipalities (rank 1 = fastest; probabilities are "
                  f"posterior probabilities):", *r.sentences, "", *r.details, ""]
    if pairwise:
        lines += [PAIRWISE_HEAD, *pairwise, ""]
    return "\n".join(lines)


def pairwise_command(args: argparse.Namespace) -> int:
    """CLI entry: ``munirank pairwise FIT_DIR --municipalities "A,B,C" [--out CSV --ci P]``.

    Prints one sentence per ordered pair and which orders are credible at ``--ci`` (default:
    the fit's interval probability); with ``--out``, writes the table of P(row faster than
    column) as CSV, replaced only when complete. Everything is checked before anything is
    written.

    Raises
    ------
    InputError
        If the folder is not a fit folder, fewer than two different municipalities are named,
        a name is not a municipality of the fit, ``--ci`` is not in (0, 1) or ``--out`` may not
        be replaced (a folder, or a file munirank did not write, without ``--overwrite``).
    """
    from munirank.input.validate import check_named_municipalities

    if args.out is not None:
        destinations.claim_file(args.out, overwrite=args.overwrite)
    folder = Path(args.folder)
    effect = effect_draws(folder)
    names = check_named_municipalities(
        [m.strip() for m in args.municipalities.split(",") if m.strip()],
        [str(m) for m in effect[DIM].to_numpy()], source="--municipalities",
        file=str(folder / "posterior.nc"), column=DIM)
    ci_prob = _fit_ci_prob(folder) if args.ci_prob is None else args.ci_prob
    if not 0 < ci_prob < 1:
        raise InputError(f"must lie strictly between 0 and 1, not {ci_prob}", option="--ci")
    table = pairwise_table(effect, names)
    print("\n".join(pairwise_lines(table, ci_prob)))
    if args.out is not None:
        with destinations.atomic_file(args.out, overwrite=args.overwrite) as tmp:
            files.write_csv(table.reset_index(), tmp)
        print(f"P(row faster than column) -> {args.out}")
    return 0


def _fit_ci_prob(folder: Path) -> float:
    """The interval probability the fit used (run.json), 0.9 if it cannot be read."""
    try:
        run = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        return float(run["spec"]["sampling"]["ci_prob"])
    except (OSError, ValueError, KeyError, TypeError):
        return 0.9
