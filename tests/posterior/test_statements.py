import itertools
import re
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from conftest import fake_posterior
from fit_folder import write_fit_folder
from munirank.posterior import sets, tables
from munirank.posterior import statements as st
from munirank.posterior.ranks import rank_draws
from munirank.reporting import html as rp

DIMS = ("chain", "draw", "municipality")


def ranks_from_tops(tops: list[tuple[list[str], float]], names: list[str], *, k: int,
                    n_draws: int = 1000, seed: int = 0) -> xr.DataArray:
    """Rank draws in which the top-k set is tops[i][0] in a share tops[i][1] of the draws."""
    rng = np.random.default_rng(seed)
    counts = [round(share * n_draws) for _, share in tops]
    assert sum(counts) == n_draws
    out = np.empty((n_draws, len(names)), dtype=np.int32)
    row = 0
    for (top, _), n in zip(tops, counts, strict=True):
        rest = [m for m in names if m not in top]
        for _ in range(n):
            perm = list(rng.permutation(top)) + list(rng.permutation(rest))
            out[row, [names.index(m) for m in perm]] = np.arange(1, len(names) + 1)
            row += 1
    assert k == len(tops[0][0])
    return xr.DataArray(out[None], dims=DIMS, coords={"municipality": names})


NAMES = [f"M{i:02d}" for i in range(12)]


@pytest.fixture
def nested():
    # top 3 is {M00, M01, M02} in 80 % of draws, {M00, M01, M03} in 12 %, {M00, M01, M04} in 8 %
    return ranks_from_tops([(["M00", "M01", "M02"], 0.80), (["M00", "M01", "M03"], 0.12),
                            (["M00", "M01", "M04"], 0.08)], NAMES, k=3)


def test_contains_set_known_answer(nested):
    s = sets.credible_set(nested, k=3, ci_prob=0.9)
    assert set(s.members[:2]) == {"M00", "M01"} and s.members[2:] == ("M02", "M03")
    assert s.probability == pytest.approx(0.92)
    assert s.proved_minimal  # any 3-set misses M02..M04: P <= 1 - P(M03 in top 3) = 0.88
    s95 = sets.credible_set(nested, k=3, ci_prob=0.95)
    assert s95.members[2:] == ("M02", "M03", "M04") and s95.probability == 1.0
    assert set(sets.credible_set(nested, k=3, ci_prob=0.8).members) == {"M00", "M01", "M02"}


def test_each_set_and_its_joint_probability():
    r = ranks_from_tops([(["M00", "M01"], 0.90), (["M00", "M02"], 0.05),
                         (["M01", "M02"], 0.05)], NAMES, k=2)
    s = sets.each_set(r, k=2, ci_prob=0.9)
    assert set(s.members) == {"M00", "M01"}  # 0.95 each
    assert s.probability == pytest.approx(0.90)  # both together
    assert sets.each_set(r, k=2, ci_prob=0.96).members == ()


def test_bottom_is_top_of_reversed_ranks(nested):
    reversed_ranks = len(NAMES) + 1 - nested
    top = sets.credible_set(nested, k=3, ci_prob=0.9)
    bottom = sets.credible_set(reversed_ranks, k=3, ci_prob=0.9, tail="bottom")
    assert bottom.members == top.members and bottom.probability == top.probability
    assert set(sets.each_set(reversed_ranks, k=3, tail="bottom").members) == {"M00", "M01"}
    with pytest.raises(ValueError, match="tail"):
        sets.credible_set(nested, k=3, tail="middle")


@pytest.mark.parametrize("seed", range(12))
def test_contains_set_against_brute_force(seed):
    # correlated effects on 7 municipalities: exhaustive search over all subsets is cheap
    rng = np.random.default_rng(seed)
    names = list("abcdefg")
    eff = rng.normal(0, 1, 7) + rng.normal(0, 0.8, (1, 400, 7)) + rng.normal(0, 0.5, (1, 400, 1))
    ranks = rank_draws(xr.DataArray(eff, dims=DIMS, coords={"municipality": names}))
    k, level = 2, 0.9
    s = sets.credible_set(ranks, k=k, ci_prob=level)
    in_top = (ranks <= k).to_numpy()[0]

    def coverage(members):
        outside = [i for i in range(7) if i not in members]
        return (in_top[:, outside].sum(axis=1) == 0).mean()

    best = next(n for n in range(1, 8)
                if any(coverage(c) >= level for c in itertools.combinations(range(7), n)))
    covered = coverage([names.index(m) for m in s.members])
    assert covered == pytest.approx(s.probability) and covered >= level
    assert len(s.members) >= best
    if s.proved_minimal:
        assert len(s.members) == best


def tiered_ranks(swap_shares: tuple[float, float], *, n_draws: int = 1000,
                 seed: int = 1) -> xr.DataArray:
    """Three groups (3, 4, 5 municipalities) in order; in a share of draws the last of one
    group swaps with the first of the next (independently at the two boundaries)."""
    rng = np.random.default_rng(seed)
    names = [f"T{i:02d}" for i in range(12)]
    base = np.tile(np.arange(1, 13), (n_draws, 1))
    for cut, share in zip((3, 7), swap_shares, strict=True):
        swap = rng.permutation(n_draws) < round(share * n_draws)
        base[swap, cut - 1], base[swap, cut] = cut + 1, cut
    within = base.copy()  # shuffle within groups so that no finer tier is credible
    for lo, hi in ((0, 3), (3, 7), (7, 12)):
        for d in range(n_draws):
            within[d, lo:hi] = rng.permutation(base[d, lo:hi])
    return xr.DataArray(within[None], dims=DIMS, coords={"municipality": names})


def test_tiers_recover_groups_and_joint_probability():
    r = tiered_ranks((0.04, 0.05))
    t = sets.tiers(r, ci_prob=0.9)
    assert t.groupby("tier").size().tolist() == [3, 4, 5]
    assert t["tiering_probability"].iloc[0] == pytest.approx(t.attrs["tiering_probability"])
    mat = r.to_numpy()[0][:, [int(m[1:]) for m in t["municipality"]]]
    tier = t["tier"].to_numpy()
    ok = np.ones(mat.shape[0], bool)
    for j in (1, 2):
        ok &= mat[:, tier == j].max(1) < mat[:, tier == j + 1].min(1)
    assert t.attrs["tiering_probability"] == pytest.approx(ok.mean())
    assert 0.9 <= ok.mean() < 0.96
    firsts = t.groupby("tier")["p_faster_than_next"].first()
    assert firsts[1] == pytest.approx(0.96) and firsts[2] == pytest.approx(0.95)
    assert np.isnan(firsts[3])


def test_tiers_drop_the_cut_that_breaks_the_joint_level():
    # each cut holds in 93 % and 94 % of draws alone, but jointly in about 87 %: keep one
    t = sets.tiers(tiered_ranks((0.07, 0.06), seed=2), ci_prob=0.9)
    assert t.groupby("tier").size().tolist() == [7, 5]
    assert t.attrs["tiering_probability"] == pytest.approx(0.94)
    one = sets.tiers(tiered_ranks((0.5, 0.5)), ci_prob=0.9)
    assert one["tier"].max() == 1 and one.attrs["tiering_probability"] == 1.0


def test_triple_goal_without_uncertainty_is_the_truth():
    theta = np.array([3.0, -1.0, 0.5, 2.0, -4.0])
    e = xr.DataArray(np.broadcast_to(theta, (2, 10, 5)), dims=DIMS,
                     coords={"municipality": list("abcde")})
    gr = sets.triple_goal(e)
    np.testing.assert_allclose(gr["effect_gr"], theta)
    assert gr["rank_gr"].values.tolist() == [5, 2, 3, 4, 1]


def test_triple_goal_restores_the_spread_that_posterior_means_lose():
    # normal-normal: theta ~ N(0, 1), y ~ N(theta, 1), posterior N(y/2, 1/2); posterior means
    # have SD sqrt(1/2), the GR estimates should have the SD of theta (1)
    rng = np.random.default_rng(5)
    n = 400
    y = rng.normal(0, 1, n) + rng.normal(0, 1, n)
    draws = y / 2 + np.sqrt(0.5) * rng.normal(size=(2, 500, n))
    e = xr.DataArray(draws, dims=DIMS, coords={"municipality": [f"m{i}" for i in range(n)]})
    gr = sets.triple_goal(e)
    sd_pm = float(e.mean(("chain", "draw")).std())
    assert sd_pm == pytest.approx(np.std(y) / 2, abs=0.02)
    assert float(gr["effect_gr"].std()) == pytest.approx(np.sqrt(np.var(y) / 4 + 0.5), abs=0.03)
    assert float(gr["effect_gr"].std()) > sd_pm + 0.2
    order_gr = np.argsort(gr["effect_gr"].to_numpy())
    order_rank = np.argsort(gr["rank_gr"].to_numpy())
    np.testing.assert_array_equal(order_gr, order_rank)
    assert sorted(gr["rank_gr"].values.tolist()) == list(range(1, n + 1))


def test_rank_table_distribution_and_percentile(nested):
    t = sets.rank_table(nested, ci_prob=0.9)
    dist = t.filter(like="p_rank_")
    assert dist.shape == (12, 12)
    np.testing.assert_allclose(dist.sum(axis=1), 1.0)
    np.testing.assert_allclose(dist.sum(axis=0), 1.0)
    assert t["rank_mean"].is_monotonic_increasing
    np.testing.assert_allclose(t["percentile_mean"], 100 * t["rank_mean"] / 13)
    assert (t["percentile_lo"] <= t["percentile_mean"]).all()


def test_within_subset_equals_ranking_the_effects_of_the_subset():
    rng = np.random.default_rng(3)
    e = xr.DataArray(rng.normal(size=(2, 40, 8)), dims=DIMS,
                     coords={"municipality": list("abcdefgh")})
    sub = ["h", "b", "e"]
    xr.testing.assert_equal(sets.within(rank_draws(e), sub), rank_draws(e, subset=sub))


@pytest.fixture(scope="module")
def fit_dir(tmp_path_factory, tiny_episodes, tiny_spec):
    spec = replace(tiny_spec, ranking=replace(tiny_spec.ranking, subset=("M01", "M02", "M05",
                                                                           "M07", "M12", "M19",
                                                                           "M20")))
    post = fake_posterior(tiny_episodes, seed=4, sigma=0.5)
    folder = write_fit_folder(tmp_path_factory.mktemp("fit"), post, tiny_episodes, spec)
    derived = tables.derived_draws(post, tiny_episodes, spec)
    table = tables.municipality_table(post, derived, tiny_episodes, spec, converged=True)
    results = st.write_statements(derived, table, spec, folder)
    return folder, derived, table, results, spec


def test_gr_columns_in_municipality_table(fit_dir):
    _, derived, table, _, _ = fit_dir
    assert {"effect_months_gr", "rank_gr"} <= set(table.columns)
    by_gr = table.sort_values("rank_gr")
    assert by_gr["rank_gr"].tolist() == list(range(1, len(table) + 1))
    assert by_gr["rank_mean"].is_monotonic_increasing  # GR ranks are the mean-rank order
    assert by_gr["effect_months_gr"].is_monotonic_increasing
    assert by_gr["effect_months_gr"].std() > table["effect_months_mean"].std()
    pooled = derived["effect_months"].to_numpy().ravel()
    assert table["effect_months_gr"].iloc[0] == pytest.approx(
        np.quantile(pooled, 1 / (2 * len(table)), method="inverted_cdf"))


def test_write_statements_files(fit_dir):
    folder, derived, _, results, spec = fit_dir
    sets = pd.read_csv(folder / "credible_sets.csv")
    assert set(sets["scope"]) == {"all", "subset"} and len(sets) == 8
    assert (sets.loc[sets["kind"] == "contains", "probability"] >= 0.9).all()
    assert set(sets.loc[sets["scope"] == "subset", "n_ranked"]) == {7}
    tiers = pd.read_csv(folder / "tiers.csv", dtype={"municipality": str})
    assert tiers.groupby("scope").size().to_dict() == {"all": 20, "subset": 7}
    probs = pd.read_csv(folder / "rank_probabilities.csv", dtype={"municipality": str})
    assert probs.filter(like="p_rank_").shape == (20, 20)
    sub = pd.read_csv(folder / "rank_probabilities_subset.csv", dtype={"municipality": str})
    assert sorted(sub["municipality"]) == sorted(spec.ranking.subset)
    text = (folder / "statements.txt").read_text()
    assert "Within the named subset of 7 municipalities" in text
    assert len(results[1].sentences) == 5  # k = 5 of 7: sets and tiers, no "X is among" lines
    for r in results:
        assert all(s in text for s in r.sentences)
    k = spec.ranking.top_k
    p_top = (derived["rank"] <= k).mean(("chain", "draw")).to_series()
    best = p_top.idxmax()
    if p_top[best] >= 0.5:
        assert f"{best} is among the {k} fastest with probability {p_top[best]:.2f}." in text


def test_subset_table_has_rank_among_all(fit_dir):
    _, derived, _, _, spec = fit_dir
    sub = tables.subset_table(derived, spec)
    assert (sub["rank_mean"] <= sub["rank_mean_all"]).all()
    assert sub["rank_mean"].max() <= len(spec.ranking.subset)


def test_pairwise_from_folder_and_tree(fit_dir):
    folder, derived, _, _, _ = fit_dir
    p = sets.pairwise(folder, ["M01", "M02", "M03"])
    assert p.shape == (3, 3) and (np.diag(p) == 0).all()
    np.testing.assert_allclose(p + p.T + np.eye(3), 1.0)  # continuous effects: no ties
    tree = xr.DataTree.from_dict({"derived": derived[["effect_months"]]})
    pd.testing.assert_frame_equal(sets.pairwise(tree, ["M01", "M02", "M03"]), p)
    expected = float((derived["effect_months"].sel(municipality="M01")
                      < derived["effect_months"].sel(municipality="M02")).mean())
    assert p.loc["M01", "M02"] == pytest.approx(expected)
    assert f"M01 is faster than M02 with probability {expected:.2f}." in \
        st.pairwise_sentences(p)
    with pytest.raises(KeyError, match="Nowhere"):
        sets.pairwise(folder, ["M01", "Nowhere"])


def test_report_statements_section(fit_dir, tmp_path):
    folder, _, table, results, _ = fit_dir
    html = rp.report(folder, out=tmp_path / "r.html", progress=False).read_text()
    section = html.split('<section id="statements">')[1].split("</section>")[0]
    assert "Within the named subset of 7 municipalities" in section
    contains = results[0].sets[0]
    assert f"With probability {contains.probability:.2f}, the" in section
    assert section.count("<table class=\"tiers\">") == 2
    # no row that looks like a municipality row of the main table (counts live only there)
    assert not re.search(r"<tr><td>M\d\d</td>", section)
    assert all(f"{m}:" in section for m in table["municipality"])  # one detail line each
