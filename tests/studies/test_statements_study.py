"""The ranking-statements study (formerly scripts/study_statements.py) as a command."""

from __future__ import annotations

import pandas as pd
import pytest

from munirank.cli import run
from munirank.studies import statements as ss


def test_one_replicate_is_scored_resumed_and_summarised(tmp_path, capsys):
    out = tmp_path / "stm"
    args = ["study-statements", "--replicates", "1", "--out", str(out), "--n-municipalities",
            "12", "--draws", "100", "--tune", "150", "--chains", "2", "--quiet"]
    assert run(args) == 0
    results = pd.read_csv(out / "results" / "part-0-of-1.csv")
    assert results["replicate"].tolist() == [0]
    row = results.iloc[0]
    assert 1 <= row["top_size"] <= 12 and 0 <= row["top_probability"] <= 1
    assert row["rank_mse_gr"] >= 0 and row["sd_true"] > 0
    summary = (out / "summary.txt").read_text()
    assert summary.startswith("replicates: 1,") and "[all] 0.9 top-10" in summary
    assert not (out / "work").exists()  # simulated registers do not outlive the study
    stamp = (out / "results" / "part-0-of-1.csv").stat().st_mtime_ns
    capsys.readouterr()
    assert run(args) == 0  # resumed: the finished replicate is not run again
    assert (out / "results" / "part-0-of-1.csv").stat().st_mtime_ns == stamp
    assert "continuing the earlier `munirank study-statements`" in capsys.readouterr().err


def test_edf_error_is_the_mean_gap_between_sorted_values():
    assert ss.edf_error([3.0, 1.0, 2.0], [2.0, 4.0, 0.0]) == pytest.approx((1 + 0 + 1) / 3)


@pytest.mark.parametrize(("args", "option"), [
    (["--replicates", "0"], "--replicates"), (["--replicates", "2", "--part", "2/2"], "--part"),
    ([], "--replicates")])
def test_bad_options_are_one_line_naming_the_option(tmp_path, capsys, args, option):
    assert run(["study-statements", "--out", str(tmp_path / "s"), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert f"option {option}:" in err and "column" not in err and "\n" not in err
