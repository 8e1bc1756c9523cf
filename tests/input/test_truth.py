"""Issue 22: truth.csv keyed by the spec's group column, and a truth file that cannot be used."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest

from munirank.cli import run
from munirank.input.truth import read_truth

SHORT = ["--draws", "60", "--tune", "100", "--chains", "2", "--quiet", "--allow-unconverged"]


def _truth_dir(tmp_path, table: pd.DataFrame | bytes):
    (tmp_path / "spells.csv").write_text("not read\n")
    path = tmp_path / "truth.csv"
    if isinstance(table, bytes):
        path.write_bytes(table)
    else:
        table.to_csv(path, index=False)
    return tmp_path / "spells.csv"


def _table(key="kommune"):
    return pd.DataFrame({key: ["0101", "0202"], "true_rank": [2, 1],
                         "true_effect_months": [1.5, -1.5]})


def test_truth_keyed_by_the_group_column_or_by_municipality(tmp_path):
    for key in ("kommune", "municipality"):
        data = _truth_dir(tmp_path, _table(key))
        truth = read_truth(data, group="kommune", municipalities=["0101", "0202"])
        assert truth["municipality"].tolist() == ["0101", "0202"]  # codes stay text
    assert read_truth(tmp_path / "elsewhere" / "spells.csv") is None  # no file: no truth


@pytest.mark.parametrize(("content", "reason"), [
    (_table("region"), "has no column 'kommune' or 'municipality'"),
    (_table().drop(columns="true_rank"), "has no column 'true_rank'"),
    (pd.concat([_table(), _table()]), "names a municipality twice"),
    (_table().iloc[:1], "has no row for 1 municipalities of the data, e.g. '0202'"),
    (b"\xff\xfe\x00garbage\x00", "truth.csv"),
    (b"", "file is empty"),
], ids=["no key", "no true_rank", "duplicate", "missing municipality", "binary", "empty"])
def test_an_unusable_truth_file_is_a_warning_not_an_error(tmp_path, caplog, content, reason):
    data = _truth_dir(tmp_path, content)
    with caplog.at_level(logging.WARNING, logger="munirank"):
        assert read_truth(data, group="kommune", municipalities=["0101", "0202"]) is None
    (record,) = caplog.records
    assert reason in record.getMessage() and "without truth scores" in record.getMessage()
    assert "\n" not in record.getMessage()


def test_compare_scores_a_truth_keyed_by_the_users_group_column(own_names_dir, tmp_path,
                                                                 capsys):
    out = tmp_path / "cmp"
    assert run(["compare", str(own_names_dir / "spells.csv"), "--spec",
                str(own_names_dir / "spec.toml"), "--out", str(out), *SHORT]) == 0
    scores = json.loads((out / "truth_scores.json").read_text())
    assert scores["n_municipalities"] == 20
    assert "Against the simulated truth" in capsys.readouterr().out


def test_compare_with_an_unusable_truth_warns_and_writes_the_rest(own_names_dir, tmp_path,
                                                                  capsys):
    data = tmp_path / "data"
    data.mkdir()
    for name in ("spells.csv", "municipal.csv", "spec.toml"):
        (data / name).write_bytes((own_names_dir / name).read_bytes())
    truth = pd.read_csv(own_names_dir / "truth.csv").rename(columns={"kommune": "kommunekode"})
    truth.to_csv(data / "truth.csv", index=False)
    out = tmp_path / "cmp"
    assert run(["compare", str(data / "spells.csv"), "--spec", str(data / "spec.toml"),
                "--out", str(out), *SHORT]) == 0
    err = capsys.readouterr().err
    assert f"munirank: warning: {data / 'truth.csv'}: has no column 'kommune'" in err
    assert "Traceback" not in err
    assert (out / "comparison.csv").is_file() and not (out / "truth_scores.json").exists()
