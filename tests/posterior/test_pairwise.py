"""Pairwise comparisons: ``munirank pairwise``, ``[ranking] pairwise`` and the report."""

import re
from dataclasses import replace

import pandas as pd
import pytest

from conftest import fake_posterior
from fit_folder import write_fit_folder
from munirank.cli import run
from munirank.errors import InputError
from munirank.input.episodes import load_episodes
from munirank.input.spec import spec_from_dict
from munirank.posterior import sets, tables
from munirank.posterior import statements as st
from munirank.reporting import html as rp

NAMES = ["M03", "M01", "M12"]
SENTENCE = re.compile(r"^(\S+) is faster than (\S+) with probability (\d\.\d\d)\.$")


@pytest.fixture(scope="module")
def pair_dir(tmp_path_factory, tiny_episodes, tiny_spec):
    """A fit folder from fake draws, its statements written with ``[ranking] pairwise``."""
    spec = replace(tiny_spec, ranking=replace(tiny_spec.ranking, pairwise=tuple(NAMES)))
    post = fake_posterior(tiny_episodes, seed=7, sigma=0.5)
    folder = write_fit_folder(tmp_path_factory.mktemp("fit"), post, tiny_episodes, spec)
    derived = tables.derived_draws(post, tiny_episodes, spec)
    table = tables.municipality_table(post, derived, tiny_episodes, spec, converged=True)
    st.write_statements(derived, table, spec, folder)
    return folder, derived["effect_months"], spec


def share_faster(effect, a: str, b: str) -> float:
    """P(a faster than b) counted draw by draw."""
    return float((effect.sel(municipality=a) < effect.sel(municipality=b)).mean())


def test_cli_prints_draw_by_draw_shares_and_writes_the_table(pair_dir, tmp_path, capsys):
    folder, effect, _ = pair_dir
    out = tmp_path / "tables" / "pairs.csv"
    code = run(["pairwise", str(folder), "--municipalities", " M03, M01,M12 ", "--out",
                str(out), "--ci", "0.6"])
    printed = capsys.readouterr().out.splitlines()
    assert code == 0
    found = [SENTENCE.match(line).groups() for line in printed if SENTENCE.match(line)]
    assert len(found) == 6  # every ordered pair once
    assert {(a, b) for a, b, _ in found} == {(a, b) for a in NAMES for b in NAMES if a != b}
    for a, b, p in found:
        assert p == f"{share_faster(effect, a, b):.2f}"
    credible = [f"{a} is faster than {b}" for a in NAMES for b in NAMES
                if a != b and share_faster(effect, a, b) >= 0.6]
    verdict = next(line for line in printed if "at probability 0.60" in line)
    assert all(c in verdict for c in credible) and verdict.count("is faster") == len(credible)
    table = pd.read_csv(out, dtype={"municipality": str}).set_index("municipality")
    assert table.index.tolist() == NAMES and table.columns.tolist() == NAMES
    for a in NAMES:
        for b in NAMES:
            expected = 0.0 if a == b else share_faster(effect, a, b)
            assert table.loc[a, b] == pytest.approx(expected, abs=1e-6)
    assert [p.name for p in out.parent.iterdir()] == ["pairs.csv"]  # no partial file left


def test_cli_default_ci_is_the_fits(pair_dir, capsys):
    folder, _, spec = pair_dir
    assert run(["pairwise", str(folder), "--municipalities", "M01,M03"]) == 0
    assert f"at probability {spec.sampling.ci_prob:.2f}" in capsys.readouterr().out


@pytest.mark.parametrize(("names", "expect"), [
    ("M01,Nowhere,XM01", ["'Nowhere'", "did you mean 'M01'?", "unknown municipalities"]),
    ("M01", ["at least two different municipalities"]),
    ("M01, M01", ["at least two different municipalities"]),
    (" , ", ["at least two different municipalities"]),
])
def test_cli_bad_names_exit_2_one_line_nothing_written(pair_dir, tmp_path, capsys, names,
                                                       expect):
    folder, _, _ = pair_dir
    out = tmp_path / "pairs.csv"
    code = run(["pairwise", str(folder), "--municipalities", names, "--out", str(out)])
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert code == 2 and captured.out == ""
    assert "\n" not in err and err.startswith("munirank: error:")
    assert str(folder / "posterior.nc") in err and "'municipality'" in err
    assert all(e in err for e in expect)
    assert list(tmp_path.iterdir()) == []


def test_cli_not_a_fit_folder_exit_2(tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "posterior.nc").write_text("not netCDF")
    for folder, says in ((empty, "posterior.nc is missing"), (tmp_path / "nope", "missing"),
                         (broken, "not the posterior of a fit")):
        code = run(["pairwise", str(folder), "--municipalities", "A,B", "--out",
                    str(tmp_path / "p.csv")])
        err = capsys.readouterr().err.strip()
        assert code == 2 and "\n" not in err and says in err and str(folder) in err
    assert not (tmp_path / "p.csv").exists()


def test_cli_bad_ci_or_out_exit_2(pair_dir, tmp_path, capsys):
    folder, _, _ = pair_dir
    assert run(["pairwise", str(folder), "--municipalities", "M01,M02", "--ci", "1.5"]) == 2
    assert "error: option --ci: must lie strictly between 0 and 1" in capsys.readouterr().err
    assert run(["pairwise", str(folder), "--municipalities", "M01,M02", "--out",
                str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "is a folder" in err
    assert list(tmp_path.iterdir()) == []


def test_fit_writes_pairwise_csv_and_sentences(pair_dir):
    folder, _, spec = pair_dir
    written = pd.read_csv(folder / "pairwise.csv", dtype={"municipality": str})
    expected = sets.pairwise(folder, NAMES)
    assert written["municipality"].tolist() == NAMES
    pd.testing.assert_frame_equal(written.set_index("municipality"), expected,
                                  check_names=False, atol=1e-6)
    text = (folder / "statements.txt").read_text()
    block = text.split(st.PAIRWISE_HEAD + "\n")[1].splitlines()
    assert block == st.pairwise_lines(expected, spec.sampling.ci_prob)  # the last block
    assert text.endswith(".\n")


def test_no_pairwise_key_no_pairwise_output(tmp_path, tiny_episodes, tiny_spec):
    post = fake_posterior(tiny_episodes, seed=7)
    folder = write_fit_folder(tmp_path / "fit", post, tiny_episodes, tiny_spec)
    derived = tables.derived_draws(post, tiny_episodes, tiny_spec)
    table = tables.municipality_table(post, derived, tiny_episodes, tiny_spec,
                                         converged=True)
    results = st.write_statements(derived, table, tiny_spec, folder)
    assert not (folder / "pairwise.csv").exists()
    assert (folder / "statements.txt").read_text() == st.statements_text(results)
    assert st.PAIRWISE_HEAD not in st.statements_text(results)


def test_report_shows_the_pairwise_sentences(pair_dir):
    folder, _, _ = pair_dir
    ff = rp.load_folder(folder)
    html = rp.render(rp.build_context(ff, {}))
    section = html.split('<section id="statements">')[1].split("</section>")[0]
    assert "<h3>Pairwise comparisons</h3>" in section
    lines = st.pairwise_lines(sets.pairwise(folder, NAMES), ff.ci_prob)
    assert len(lines) == 7
    assert all(f"<li>{line}</li>" in section for line in lines)


def test_spec_accepts_pairwise_and_refuses_unknown_keys():
    spec = spec_from_dict({"ranking": {"top_k": 5, "pairwise": ["Horsens", "Vejle"]}})
    assert spec.ranking.pairwise == ("Horsens", "Vejle")
    assert spec_from_dict({}).ranking.pairwise == ()
    with pytest.raises(InputError, match=r"ranking\.pairwize"):
        spec_from_dict({"ranking": {"pairwize": ["Horsens", "Vejle"]}})


@pytest.mark.parametrize(("names", "says"), [
    (("M01", "Nowhere"), "unknown municipality 'Nowhere'"),
    (("M01",), "at least two different municipalities"),
    ("M01,M02", "must be a list of municipality names"),
])
def test_fit_checks_pairwise_names_before_sampling(tiny_dir, tiny_spec, names, says):
    spec = replace(tiny_spec, ranking=replace(tiny_spec.ranking, pairwise=names))
    with pytest.raises(InputError, match=re.escape(says)) as err:
        load_episodes(tiny_dir / "spells.csv", spec)
    assert "[ranking] pairwise" in str(err.value) and "spells.csv" in str(err.value)


def test_verdict_names_only_credible_orders():
    t = pd.DataFrame([[0.0, 0.95, 0.7], [0.05, 0.0, 0.4], [0.3, 0.6, 0.0]],
                     index=list("ABC"), columns=list("ABC"))
    assert st.pairwise_verdict(t, 0.9) == "Credible at probability 0.90: A is faster than B."
    assert st.pairwise_verdict(t, 0.6) == ("Credible at probability 0.60: A is faster than "
                                                "B; A is faster than C; C is faster than B.")
    assert st.pairwise_verdict(t, 0.99) == ("No order among A, B and C is credible at "
                                                 "probability 0.99.")
