import re

import pandas as pd
import pytest

from conftest import fake_posterior
from fit_folder import write_fit_folder
from munirank.cli import run
from munirank.errors import InputError
from munirank.reporting import html as rp


@pytest.fixture(scope="module")
def folders(tmp_path_factory, tiny_episodes, tiny_spec):
    root = tmp_path_factory.mktemp("fits")
    post = fake_posterior(tiny_episodes, seed=3)
    good = write_fit_folder(root / "good", post, tiny_episodes, tiny_spec, converged=True,
                            comparison=True)
    bad = write_fit_folder(root / "bad", post, tiny_episodes, tiny_spec, converged=False)
    return good, bad


@pytest.fixture(scope="module")
def html_good(folders, tmp_path_factory):
    out = rp.report(folders[0], out=tmp_path_factory.mktemp("r") / "good.html", progress=False)
    return out.read_text()


@pytest.fixture(scope="module")
def html_bad(folders, tmp_path_factory):
    out = rp.report(folders[1], out=tmp_path_factory.mktemp("r") / "bad.html", progress=False)
    return out.read_text()


@pytest.mark.parametrize("section", rp.SECTIONS)
def test_every_section_has_its_id(html_good, html_bad, section):
    assert f'<section id="{section}">' in html_good
    assert f'<section id="{section}">' in html_bad


def test_banner_iff_not_converged(html_good, html_bad):
    assert 'id="not-converged-banner"' in html_bad
    assert 'id="not-converged-banner"' not in html_good


def test_no_external_urls(html_good, html_bad):
    for html in (html_good, html_bad):
        assert not re.search(r"https?://", html)
        refs = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', html)
        assert refs, "expected embedded images and in-page links"
        assert all(r.startswith(("#", "data:image/png;base64,")) for r in refs), refs
        assert "<link" not in html and "@import" not in html and "url(" not in html


def test_figures_embedded(html_good, html_bad):
    n_good = html_good.count('src="data:image/png;base64,')
    n_bad = html_bad.count('src="data:image/png;base64,')
    assert n_good == 7  # caterpillar, ranks, top-bottom, shrinkage, funnel, ppc, comparison
    assert n_bad == 4
    assert html_bad.count("run <code>munirank compare</code> for this section") == 3


def test_no_per_person_data(html_good, tiny_dir):
    spells = pd.read_csv(tiny_dir / "spells.csv")
    assert "person_id" not in html_good and "episode_" not in html_good
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", html_good)
    cells = set(re.findall(r"<td[^>]*>([^<]*)</td>", text))
    # raw exit times (3 decimals in the data) never appear as table cells
    stops = {f"{v:.3f}" for v in spells["stop"]}
    assert not cells & stops
    n_rows = len(re.findall(r"<tr><td>M\d\d</td>", text))
    assert n_rows == spells["municipality"].nunique()


def test_small_counts_blank(folders, html_good):
    table = pd.read_csv(folders[0] / "municipalities.csv", dtype={"municipality": str})
    small = table[table["small_cell"]]
    assert len(small) > 0, "the tiny preset has municipalities under the threshold"
    for _, r in small.iterrows():
        row = re.search(rf"<tr><td>{r['municipality']}</td><td[^>]*>([^<]*)</td>"
                        r"<td[^>]*>([^<]*)</td>", html_good)
        assert row is not None
        assert row.group(1) == ("&lt;5" if pd.isna(r["n_spells"]) else str(int(r["n_spells"])))
        assert row.group(2) == ("" if pd.isna(r["n_events"]) else str(int(r["n_events"])))
        assert pd.isna(r["n_spells"]) or pd.isna(r["n_events"])


def test_count_display():
    assert rp._count(pd.NA, 5, spells=True) == "<5"
    assert rp._count(pd.NA, 10, spells=False) == ""
    assert rp._count(12, 5, spells=True) == "12"


def test_statements_and_interval_labels(html_good):
    assert re.search(r"is among the 5 fastest with probability [01]\.\d\d", html_good)
    assert re.search(r"is among the 5 slowest with probability [01]\.\d\d", html_good)
    assert "90 % interval" in html_good
    assert "&lt;check escaping&gt;" in html_good  # comparison_summary.txt is escaped


def test_statements_pick_the_most_likely():
    table = pd.DataFrame({"municipality": ["A", "B", "C"], "p_top10": [0.1, 0.9, 0.5],
                          "p_bottom10": [0.7, 0.0, 0.2]})
    out = rp.statements(table, top_k=10, n=1)
    assert out == ["B is among the 10 fastest with probability 0.90.",
                   "A is among the 10 slowest with probability 0.70."]


def test_cli_report_and_bad_folder(folders, tmp_path, capsys):
    out = tmp_path / "sub" / "r.html"
    assert run(["report", str(folders[1]), "--out", str(out)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert run(["report", str(tmp_path), "--out", str(tmp_path / "x.html")]) == 2
    assert "not a fit folder" in capsys.readouterr().err
    assert not (tmp_path / "x.html").exists()
    with pytest.raises(InputError):
        rp.load_folder(tmp_path / "missing")


@pytest.mark.parametrize(("name", "damage"), [
    ("municipalities.csv", b"\x00\xff\xfe\x00"), ("run.json", b"{not json"),
    ("posterior.nc", b"CDF\x01 truncated"), ("diagnostics.json", b"[1, 2")])
def test_a_damaged_required_file_is_one_line_exit_2(folders, tmp_path, capsys, name, damage):
    import shutil

    fit = tmp_path / "fit"
    shutil.copytree(folders[0], fit)
    (fit / name).write_bytes(damage)
    assert run(["report", str(fit), "--out", str(tmp_path / "r.html")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"munirank: error: {fit / name}: cannot be read") and "\n" not in err
    assert not (tmp_path / "r.html").exists()


def test_a_damaged_optional_file_loses_its_section_with_a_warning(folders, tmp_path, capsys):
    import shutil

    fit = tmp_path / "fit"
    shutil.copytree(folders[0], fit)
    (fit / "comparison.csv").write_bytes(b'a,"b\n1')  # an unterminated quote
    assert run(["report", str(fit), "--out", str(tmp_path / "r.html")]) == 0
    err = capsys.readouterr().err
    assert f"munirank: warning: {fit / 'comparison.csv'}: cannot be read" in err
    assert "Traceback" not in err and (tmp_path / "r.html").is_file()
