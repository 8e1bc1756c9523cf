r"""Statements about the whole ranking that stay honest when all municipalities are compared.

Everything is computed from the posterior rank (or effect) draws, draw by draw. With K
municipalities, S draws and rank r_ms of municipality m in draw s (1 = fastest):

- Expected rank R̄_m = mean_s r_ms; posterior percentile 100 r / (K + 1) (Lin, Louis, Paddock
  and Ridgeway 2006), 0 = fastest; rank distribution P(r_m = r).
- Top-k credible set ("contains"): T_s = {m : r_ms <= k} is the true top k in draw s. The set
  wanted is the smallest C with P(T ⊆ C) >= p. Candidates are the prefixes of the
  municipalities sorted by P(top k): draw s needs the prefix up to its worst-placed top-k
  member, and the answer is the ``p``-quantile of that need (see :func:`credible_set`).
- Top-k "each" set: {m : P(r_m <= k) >= p}, with the joint probability that all are in it.
  Bottom-k sets are the same with the ranks reversed (K + 1 - r).
- Triple-goal (GR) estimates (Shen and Louis 1998): the effects' distribution is estimated by
  the mean posterior EDF Ḡ(t) = (1/K) sum_m P(theta_m <= t | y), the EDF of all draws
  pooled; municipality m gets Ḡ^{-1}((2 R̂_m - 1) / (2K)), where R̂_m are the integer ranks
  of the expected ranks R̄_m. One set of estimates then has a near-optimal histogram and
  ranks, at a small cost in squared error per municipality.
- Tiers: municipalities in mean-rank order, cut into consecutive groups so that, with joint
  probability >= p, every municipality of tier j is faster than every one of tier j + 1 for all
  j. A cut after position c holds in draw s iff the first c municipalities occupy ranks 1..c,
  i.e. max_{i <= c} r_(i)s = c (see :func:`tiers`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from munirank import outputs
from munirank.rankprob import rank_probability_kernel
from munirank.ranks import SAMPLE_DIMS, pairwise_faster, rank_kernel
from munirank.spec import Spec

DIM = "municipality"


@dataclass(frozen=True)
class CredibleSet:
    """A set of municipalities and what it holds with which posterior probability.

    ``kind`` is ``"contains"`` (the set contains all of the true top k with probability
    ``probability``) or ``"each"`` (each member is in the top k with probability at least
    ``ci_prob``; ``probability`` is that all are, jointly). ``tail`` is ``"top"`` (fastest) or
    ``"bottom"`` (slowest). ``proved_minimal`` says whether no smaller set can reach
    ``ci_prob`` (always True for ``"each"``, where size is not minimised).
    """

    tail: str
    kind: str
    k: int
    ci_prob: float
    members: tuple[str, ...]
    probability: float
    proved_minimal: bool


def draw_matrix(ranks: xr.DataArray, *, dim: str = DIM) -> tuple[np.ndarray, list[str]]:
    """Ranks as an (S draws, K municipalities) array, and the municipality names."""
    stacked = ranks.stack(sample=SAMPLE_DIMS).transpose("sample", dim)
    return stacked.to_numpy(), [str(m) for m in stacked[dim].to_numpy()]


def _oriented(ranks: np.ndarray, tail: str) -> np.ndarray:
    if tail not in ("top", "bottom"):
        raise ValueError(f"tail must be 'top' or 'bottom', not {tail!r}")
    return ranks if tail == "top" else ranks.shape[1] + 1 - ranks


def _needed(count: np.ndarray, n_draws: int, ci_prob: float) -> int:
    """Smallest n with count[n] >= ci_prob * n_draws (count is cumulative, non-decreasing)."""
    return int(np.searchsorted(count, np.ceil(ci_prob * n_draws - 1e-9), side="left"))


def credible_set(ranks: xr.DataArray, *, k: int = 10, ci_prob: float = 0.9,
                 tail: str = "top") -> CredibleSet:
    """The smallest set found that contains all of the true top (bottom) k with ``ci_prob``.

    Municipalities are sorted by P(top k) (ties by mean rank); draw s needs the shortest
    prefix that holds its whole top k, and the set is the shortest prefix that enough draws
    need. Its probability is >= ``ci_prob`` by construction, whatever the posterior.

    Minimising the size exactly is a set-union covering problem (choose draws whose top-k
    sets have a small union), NP-hard in general; the prefix is the standard greedy answer. It
    is exact when the draws' top-k sets are nested along the P(top k) order (a clear leading
    group and a fuzzy margin, the usual case), and it is *proved* minimal when no set of one
    fewer can reach ``ci_prob`` by either bound: P(T ⊆ C) <= sum_{m in C} P(m in T) / k
    (Markov, since |T| >= k) and P(T ⊆ C) <= 1 - P(m in T) for any m outside C.

    Parameters
    ----------
    ranks : xarray.DataArray
        Rank draws (chain, draw, municipality), 1 = fastest.
    k : int
        Size of the top (bottom) set.
    ci_prob : float
        Required posterior probability.
    tail : {"top", "bottom"}
        Fastest or slowest.

    Returns
    -------
    CredibleSet
        ``kind = "contains"``; members in order of P(top k).

    Examples
    --------
    >>> r = xr.DataArray([[[1, 2, 3], [2, 1, 3]]], dims=("chain", "draw", "municipality"),
    ...                  coords={"municipality": ["A", "B", "C"]})
    >>> credible_set(r, k=1, ci_prob=0.9).members
    ('A', 'B')
    """
    mat, names = draw_matrix(ranks)
    mat = _oriented(mat, tail)
    n_draws, n_muni = mat.shape
    in_top = mat <= k
    p = in_top.mean(axis=0)
    order = np.lexsort((mat.mean(axis=0), -p))
    position = np.empty(n_muni, dtype=np.int64)
    position[order] = np.arange(1, n_muni + 1)
    need = np.where(in_top, position[None, :], 0).max(axis=1)
    count = np.bincount(need, minlength=n_muni + 1).cumsum()
    size = _needed(count, n_draws, ci_prob)
    p_sorted = p[order]
    smaller_bound = min(p_sorted[: size - 1].sum() / k, 1.0 - p_sorted[size - 1]) if size else 1
    return CredibleSet(tail=tail, kind="contains", k=k, ci_prob=ci_prob,
                       members=tuple(names[i] for i in order[:size]),
                       probability=float(count[size] / n_draws),
                       proved_minimal=bool(size == 0 or smaller_bound < ci_prob))


def each_set(ranks: xr.DataArray, *, k: int = 10, ci_prob: float = 0.9,
             tail: str = "top") -> CredibleSet:
    """The municipalities each in the top (bottom) k with probability at least ``ci_prob``.

    Returns
    -------
    CredibleSet
        ``kind = "each"``; ``probability`` is the joint probability that all members are in
        the top (bottom) k (1 for an empty set); members in order of P(top k).
    """
    mat, names = draw_matrix(ranks)
    in_top = _oriented(mat, tail) <= k
    p = in_top.mean(axis=0)
    order = [i for i in np.lexsort((_oriented(mat, tail).mean(axis=0), -p))
             if p[i] >= ci_prob - 1e-12]
    joint = in_top[:, order].all(axis=1).mean() if order else 1.0
    return CredibleSet(tail=tail, kind="each", k=k, ci_prob=ci_prob,
                       members=tuple(names[i] for i in order), probability=float(joint),
                       proved_minimal=True)


def rank_table(ranks: xr.DataArray, *, ci_prob: float = 0.9) -> pd.DataFrame:
    """Expected rank, posterior percentile and the rank distribution, one row each.

    Returns
    -------
    pandas.DataFrame
        ``municipality``, ``rank_mean``, ``percentile_mean`` (100 E[rank] / (K + 1), 0 =
        fastest), ``percentile_lo``, ``percentile_hi`` (equal-tailed ``ci_prob``), and
        ``p_rank_1`` .. ``p_rank_K``; sorted by mean rank. ``attrs["ci_prob"]`` is set.
    """
    mat, names = draw_matrix(ranks)
    n_muni = mat.shape[1]
    tail = (1 - ci_prob) / 2
    pct = 100 * mat / (n_muni + 1)
    probs = rank_probability_kernel(mat, n_muni, axis=0)
    table = pd.DataFrame({
        "municipality": names, "rank_mean": mat.mean(axis=0),
        "percentile_mean": pct.mean(axis=0),
        "percentile_lo": np.quantile(pct, tail, axis=0, method="lower"),
        "percentile_hi": np.quantile(pct, 1 - tail, axis=0, method="higher"),
    })
    dist = pd.DataFrame(probs, columns=[f"p_rank_{r}" for r in range(1, n_muni + 1)])
    table = pd.concat([table, dist], axis=1)
    table = table.sort_values(["rank_mean", "municipality"], kind="stable")
    table.attrs["ci_prob"] = ci_prob
    return table.reset_index(drop=True)


def triple_goal(effect: xr.DataArray, *, dim: str = DIM) -> xr.Dataset:
    """Triple-goal (GR) estimates of Shen and Louis (1998).

    Parameters
    ----------
    effect : xarray.DataArray
        Effect draws (chain, draw, municipality); rank 1 = most negative.
    dim : str
        The municipality dimension.

    Returns
    -------
    xarray.Dataset
        ``effect_gr`` (the (2 R̂ - 1) / (2K) quantile of the pooled draws) and ``rank_gr``
        (R̂: integer ranks of the expected ranks, ties by posterior mean), dim ``dim``.

    Examples
    --------
    >>> e = xr.DataArray([[[0.0, 1.0], [2.0, 3.0]]], dims=("chain", "draw", "municipality"))
    >>> triple_goal(e)["rank_gr"].values.tolist()
    [1, 2]
    """
    mat = effect.stack(sample=SAMPLE_DIMS).transpose("sample", dim).to_numpy()
    n_muni = mat.shape[1]
    rank_mean = rank_kernel(mat, axis=1).mean(axis=0)
    order = np.lexsort((mat.mean(axis=0), rank_mean))
    rank_hat = np.empty(n_muni, dtype=np.int64)
    rank_hat[order] = np.arange(1, n_muni + 1)
    levels = (2 * rank_hat - 1) / (2 * n_muni)
    gr = np.quantile(mat.ravel(), levels, method="inverted_cdf")
    coords = {dim: effect[dim]} if dim in effect.coords else {}
    return xr.Dataset({"effect_gr": ((dim,), gr), "rank_gr": ((dim,), rank_hat)},
                      coords=coords)


def boundary_events(ranks: np.ndarray) -> np.ndarray:
    """Per draw, whether the first c columns hold ranks 1..c, for c = 1..K-1 (S x K-1)."""
    top = np.maximum.accumulate(ranks, axis=1)[:, :-1]
    return top == np.arange(1, ranks.shape[1])[None, :]


def tiers(ranks: xr.DataArray, *, ci_prob: float = 0.9) -> pd.DataFrame:
    """Consecutive tiers in mean-rank order whose order is credible jointly at ``ci_prob``.

    Cuts are added greedily, most probable first, while the joint probability (share of draws
    in which every tier beats the next one) stays >= ``ci_prob``; a cut less probable than
    ``ci_prob`` on its own is never added. At the end no further cut keeps the level: the order
    within a tier is not credible. Greedy need not give the most tiers possible.

    Returns
    -------
    pandas.DataFrame
        ``municipality``, ``rank_mean``, ``tier`` (1 = fastest), ``tier_size``,
        ``p_faster_than_next`` (P(every member beats every member of the next tier), NaN for
        the last), ``tiering_probability`` (joint over all cuts); attrs ``ci_prob`` and
        ``tiering_probability``.
    """
    mat, names = draw_matrix(ranks)
    order = np.lexsort((np.array(names), mat.mean(axis=0)))
    events = boundary_events(mat[:, order])
    p_cut = events.mean(axis=0)
    alive = np.ones(mat.shape[0], dtype=bool)
    cuts: list[int] = []
    for c in np.argsort(-p_cut, kind="stable"):
        if p_cut[c] < ci_prob:
            break
        trial = alive & events[:, c]
        if trial.mean() >= ci_prob - 1e-12:
            alive, cuts = trial, [*cuts, int(c)]
    tier = np.ones(len(order), dtype=np.int64)
    for c in cuts:
        tier[c + 1:] += 1
    last = {t: max(i for i in range(len(order)) if tier[i] == t) for t in set(tier.tolist())}
    next_p = {t: (p_cut[i] if i < len(order) - 1 else np.nan) for t, i in last.items()}
    table = pd.DataFrame({
        "municipality": [names[i] for i in order], "rank_mean": mat.mean(axis=0)[order],
        "tier": tier, "tier_size": np.bincount(tier)[tier],
        "p_faster_than_next": [next_p[t] for t in tier.tolist()],
        "tiering_probability": float(alive.mean()),
    })
    table.attrs.update(ci_prob=ci_prob, tiering_probability=float(alive.mean()))
    return table


def within(ranks: xr.DataArray, names: Sequence[str], *, dim: str = DIM) -> xr.DataArray:
    """Ranks among ``names`` only, per draw, from ranks among all (same order as effects)."""
    sub = ranks.sel({dim: list(names)})
    return xr.apply_ufunc(rank_kernel, sub, input_core_dims=[[dim]], output_core_dims=[[dim]],
                          kwargs={"axis": -1}).rename("rank")


def pairwise(result_or_dir: Any, municipalities: Sequence[str]) -> pd.DataFrame:
    """P(row municipality is faster than column municipality), from the effect draws.

    Parameters
    ----------
    result_or_dir : FitResult, xarray.DataTree, str or Path
        A fit result, its posterior tree, or a fit folder (posterior.nc is read).
    municipalities : sequence of str
        The municipalities to compare, e.g. a municipality and its neighbours.

    Returns
    -------
    pandas.DataFrame
        Square table indexed and labelled by municipality; the diagonal is 0.

    Raises
    ------
    KeyError
        If a name is not a municipality of the fit.

    Examples
    --------
    >>> pairwise("fit", ["Horsens", "Vejle"])  # doctest: +SKIP
    """
    effect = _effect_draws(result_or_dir)
    missing = sorted(set(municipalities) - set(effect[DIM].to_numpy().tolist()))
    if missing:
        raise KeyError(f"not municipalities of this fit: {missing}")
    p = pairwise_faster(effect, municipalities).rename(other="faster_than")
    return p.to_pandas()


def _effect_draws(result_or_dir: Any) -> xr.DataArray:
    tree = getattr(result_or_dir, "tree", result_or_dir)
    if isinstance(tree, xr.DataTree):
        return tree["derived"].to_dataset()["effect_months"].load()
    path = Path(result_or_dir) / "posterior.nc"
    with xr.open_dataset(path, group="derived", engine="netcdf4") as derived:
        return derived["effect_months"].load()


def pairwise_sentences(table: pd.DataFrame) -> list[str]:
    """One sentence per ordered pair of :func:`pairwise`'s table."""
    return [f"{a} is faster than {b} with probability {table.loc[a, b]:.2f}."
            for a in table.index for b in table.columns if a != b]


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
    mat, names = draw_matrix(ranks)
    p = {t: pd.Series((_oriented(mat, t) <= k).mean(axis=0), index=names)
         for t in ("top", "bottom")}
    tiering = tiers(ranks, ci_prob=ci_prob)
    where = "" if scope == "all" else f" of the {len(names)} in the subset"
    sentences = [*(_set_sentence(s, where, p[s.tail]) for s in sets),
                 _tier_sentence(tiering, where),
                 *(_named_sentences(p, k, where, n_named) if 2 * k <= len(names) else [])]
    details = _detail_lines(rt, p, k, ci_prob, table if scope == "all" else None)
    return RankingStatements(scope=scope, n_ranked=len(names), top_k=k, ci_prob=ci_prob,
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
    """Write credible_sets.csv, tiers.csv, rank_probabilities.csv and statements.txt.

    Parameters
    ----------
    tree_or_derived : xarray.DataTree or xarray.Dataset
        The result tree (its ``derived`` group is used) or the derived draws with ``rank``.
    table : pandas.DataFrame
        municipalities.csv, for the effects quoted in the detail lines.
    spec : Spec
        ``ranking.top_k``, ``ranking.subset`` and ``sampling.ci_prob`` are used.
    folder : str or Path
        Output folder; with a subset, ``rank_probabilities_subset.csv`` is written too.

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
    outputs.write_csv(sets_table(results), folder / "credible_sets.csv")
    tier_rows = [r.tiers.assign(scope=r.scope) for r in results]
    outputs.write_csv(pd.concat(tier_rows, ignore_index=True)[["scope", *results[0].tiers]],
                      folder / "tiers.csv")
    for r in results:
        name = "rank_probabilities.csv" if r.scope == "all" else "rank_probabilities_subset.csv"
        outputs.write_csv(r.ranks, folder / name)
    (folder / "statements.txt").write_text(statements_text(results), encoding="utf-8")
    return results


def statements_text(results: Sequence[RankingStatements]) -> str:
    """The plain-language statements, one per line, then one detail line per municipality."""
    lines = []
    for r in results:
        head = ("Among all" if r.scope == "all" else "Within the named subset of")
        lines += [f"{head} {r.n_ranked} municipalities (rank 1 = fastest; probabilities are "
                  f"posterior probabilities):", *r.sentences, "", *r.details, ""]
    return "\n".join(lines)
