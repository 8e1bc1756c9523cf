"""Competing outcomes as read: [data] outcome in a user's own names, and bad input (exit 2)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tomli_w

from munirank.cli import run
from munirank.input.spec import load_spec, spec_to_dict


def _copy(outcomes_dir, tmp_path, *, spells=None, **data_keys):
    """The Danish-named outcome register in tmp_path, spells and spec [data] changed."""
    table = pd.read_csv(outcomes_dir / "spells.csv", dtype={"kommune": str})
    if spells is not None:
        table = spells(table)
    table.to_csv(tmp_path / "spells.csv", index=False)
    pd.read_csv(outcomes_dir / "municipal.csv").to_csv(tmp_path / "municipal.csv", index=False)
    spec = spec_to_dict(load_spec(outcomes_dir / "spec.toml"))
    spec["data"] |= data_keys
    for key in [k for k, v in data_keys.items() if v is None]:
        spec["data"].pop(key)
    (tmp_path / "spec.toml").write_text(tomli_w.dumps(spec))
    return tmp_path / "spells.csv", tmp_path / "spec.toml"


def test_outcomes_are_read_in_the_users_names(outcome_episodes, outcomes_dir):
    ep = outcome_episodes
    assert ep["outcome"].to_numpy().tolist() == ["selvforsoergelse", "uddannelse"]
    spells = pd.read_csv(outcomes_dir / "spells.csv", dtype={"kommune": str})
    code = ep["episode_outcome"].to_numpy()
    assert np.array_equal(code >= 0, spells["haendelse"].to_numpy() == 1)
    labels = np.array(["selvforsoergelse", "uddannelse"])
    assert (labels[code[code >= 0]] == spells["udfald"].dropna().to_numpy()).all()
    counts = ep["n_events_outcome"]
    assert np.array_equal(counts.sum("outcome").to_numpy(), ep["n_events"].to_numpy())
    assert counts.sel(outcome="uddannelse").sum() > 100  # both outcomes have events


def test_without_outcome_the_episodes_are_as_before(outcomes_dir, tmp_path):
    from munirank.input.episodes import load_episodes

    data, spec = _copy(outcomes_dir, tmp_path, outcome=None, outcomes=None)
    ep = load_episodes(data, load_spec(spec))
    assert "outcome" not in ep.dims and "episode_outcome" not in ep


def _sixth(table):
    event = table.index[table["haendelse"] == 1]
    table.loc[event, "udfald"] = [f"u{i % 6}" for i in range(len(event))]
    return table


def _censored_with_outcome(table):
    table.loc[table.index[table["haendelse"] == 0][2], "udfald"] = "uddannelse"
    return table


def _event_without_outcome(table):
    table.loc[table.index[table["haendelse"] == 1][0], "udfald"] = np.nan
    return table


def _one_outcome(table):
    table.loc[table["haendelse"] == 1, "udfald"] = "selvforsoergelse"
    return table


BAD = {
    "censored row with an outcome": (_censored_with_outcome, {},
                                     "outcome is given for a censored row"),
    "event without an outcome": (_event_without_outcome, {}, "an event without an outcome"),
    "listed outcome without events": (None, {"outcomes": ["selvforsoergelse", "uddannelse",
                                                          "praktik"]},
                                      "'praktik' (listed in [data] outcomes) has no events"),
    "six outcomes": (_sixth, {"outcomes": None}, "at most 5 competing outcomes"),
    "one outcome": (_one_outcome, {"outcomes": None}, "competing outcomes need at least two"),
    "outcome not listed": (_sixth, {}, "is not in [data] outcomes"),
    "with nesting": (None, {"parent": "kommune_ny"}, "cannot be combined with [data] parent"),
    "with periods": (lambda t: t.assign(maaling=np.where(t.index % 2, 2007, 2009)),
                     {"period": "maaling"}, "cannot be combined with [data] period"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_outcome_input_one_line_exit_2_nothing_written(case, outcomes_dir, tmp_path, capsys):
    change, keys, expect = BAD[case]
    data, spec = _copy(outcomes_dir, tmp_path, spells=change, **keys)
    out = tmp_path / "fit"
    code = run(["fit", str(data), "--spec", str(spec), "--out", str(out), "--draws", "10",
                "--tune", "10", "--chains", "1", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2, err
    assert "\n" not in err and expect in err
    assert not out.exists()
    if "row" in case:
        assert "spells.csv" in err and "udfald" in err and "row" in err
    if case.startswith("with"):  # a spec problem: the spec file and its key are named
        assert "spec.toml" in err and "data." in err


def test_laplace_and_student_t_are_refused_with_outcomes(outcomes_dir, tmp_path, capsys):
    data, spec = _copy(outcomes_dir, tmp_path)
    assert run(["fit", str(data), "--spec", str(spec), "--out", str(tmp_path / "f"),
                "--method", "laplace"]) == 2
    assert "sampling.method" in capsys.readouterr().err
    values = spec_to_dict(load_spec(spec))
    values["model"]["group_effect"] = "student_t"
    spec.write_text(tomli_w.dumps(values))
    assert run(["fit", str(data), "--spec", str(spec), "--out", str(tmp_path / "f")]) == 2
    assert "model.group_effect" in capsys.readouterr().err


def test_spec_hash_unchanged_without_outcome_keys():
    from munirank.input.spec import Spec, spec_to_dict

    d = spec_to_dict(Spec())
    assert "outcomes" not in d["data"] and "outcome" not in d["data"]
    assert "lkj_eta" not in d["model"]["priors"]


@pytest.mark.parametrize("command", ["check", "compare"])
def test_check_and_compare_refuse_outcomes(command, outcomes_dir, tmp_path, capsys):
    data, spec = _copy(outcomes_dir, tmp_path)
    out = tmp_path / command
    assert run([command, str(data), "--spec", str(spec), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert "data.outcome" in err and "\n" not in err and not out.exists()


def test_default_spec_hash_is_as_before_issue_26():
    """Specs without the outcome keys hash as they did before the keys existed (main 7d8939d)."""
    from munirank.input.spec import Spec, spec_hash

    assert spec_hash(Spec()) == ("068dc82d55b696aaff1d56564de7b822"
                                 "0d8f43b10b8b733d31ae492675ce0619")
