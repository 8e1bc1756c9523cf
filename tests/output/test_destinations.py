"""Issue 27: an output never replaces what munirank did not write.

Unit tests of :mod:`munirank.output.destinations` with a stand-in writer, then every command on the
command line with each case of the module docstring's table. Refusals come before any work,
so they are tested with inputs that would fail later (the refusal must name the output).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from munirank.cli import run
from munirank.errors import InputError
from munirank.output import destinations as dn

SHORT = ["--draws", "20", "--tune", "20", "--chains", "1", "--quiet", "--allow-unconverged"]


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _user_folder(path: Path) -> Path:
    path.mkdir(parents=True)
    (path / "notes.txt").write_text("my own notes\n")
    return path


def _munirank_folder(path: Path, command: str = "fit") -> Path:
    with dn.atomic_folder(path, command=command) as tmp:
        (tmp / "municipalities.csv").write_text("old\n")
        (tmp / "stale.csv").write_text("only in the old output\n")
    return path


def _write_new(path: Path, **kwargs) -> None:
    with dn.atomic_folder(path, command="fit", **kwargs) as tmp:
        (tmp / "municipalities.csv").write_text("new\n")


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _no_temporaries(place: Path) -> bool:
    return not [p for p in place.rglob(".*") if ".partial-" in p.name or ".old-" in p.name]


# --- what is at the target --------------------------------------------------------------------

def test_inspect_tells_missing_empty_munirank_foreign_and_file(tmp_path):
    assert dn.inspect_folder(tmp_path / "none").kind == "missing"
    (tmp_path / "empty").mkdir()
    assert dn.inspect_folder(tmp_path / "empty").empty
    ours = dn.inspect_folder(_munirank_folder(tmp_path / "fit"))
    assert (ours.command, ours.foreign) == ("fit", ())
    assert set(ours.ours) == {dn.MARKER, "municipalities.csv", "stale.csv"}
    (tmp_path / "fit" / "notes.txt").write_text("added later by the user\n")
    mixed = dn.inspect_folder(tmp_path / "fit")
    assert mixed.foreign == ("notes.txt",) and "municipalities.csv" in mixed.ours
    user = dn.inspect_folder(_user_folder(tmp_path / "user"))
    assert (user.command, user.ours, user.foreign) == (None, (), ("notes.txt",))
    (tmp_path / "afile").write_text("x")
    assert dn.inspect_folder(tmp_path / "afile").kind == "file"


def test_a_folder_of_munirank_0_1_is_recognised_by_its_files(tmp_path):
    """No marker: run.json and only names a fit writes; one other file makes it not ours."""
    old = tmp_path / "old"
    old.mkdir()
    for name in ("run.json", "municipalities.csv", "posterior.nc"):
        (old / name).write_text("x")
    assert dn.inspect_folder(old).command == "fit"
    (old / "notes.txt").write_text("mine")
    assert dn.inspect_folder(old).command is None
    assert "notes.txt" in dn.inspect_folder(old).foreign
    truth_only = tmp_path / "t"
    truth_only.mkdir()
    (truth_only / "municipalities.csv").write_text("x")  # no defining file
    assert dn.inspect_folder(truth_only).command is None
    summary_only = tmp_path / "s"  # episodes came after the marker: no folder without one
    summary_only.mkdir()
    for name in ("summary.json", "summary.txt"):
        (summary_only / name).write_text("x")
    assert dn.inspect_folder(summary_only).command is None


# --- writing a folder -------------------------------------------------------------------------

def test_new_and_empty_folders_are_written_with_the_marker(tmp_path):
    for out in (tmp_path / "new" / "deeper", tmp_path / "empty"):
        if out.name == "empty":
            out.mkdir()
        _write_new(out)
        marker = json.loads((out / dn.MARKER).read_text())
        assert marker == {"written_by": "munirank", "command": "fit",
                          "entries": ["municipalities.csv"]}
        assert _no_temporaries(out.parent)


def test_a_munirank_folder_is_replaced_whole_and_the_replacement_is_said(tmp_path, caplog):
    out = _munirank_folder(tmp_path / "fit", command="simulate")
    with caplog.at_level(logging.INFO, logger="munirank"):
        _write_new(out)
    assert sorted(p.name for p in out.iterdir()) == [dn.MARKER, "municipalities.csv"]
    assert (out / "municipalities.csv").read_text() == "new\n"
    assert [r.getMessage() for r in caplog.records] == [
        f"replaced the earlier output of `munirank simulate` in {out}"]
    assert _no_temporaries(tmp_path)


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_regular_file_is_never_replaced_by_a_folder(tmp_path, overwrite):
    out = tmp_path / "afile"
    out.write_text("the user's file\n")
    with pytest.raises(InputError, match="is a file"):
        _write_new(out, overwrite=overwrite)
    assert out.read_text() == "the user's file\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_a_folder_with_other_files_is_refused_and_left_as_it_was(tmp_path):
    out = _munirank_folder(tmp_path / "fit")
    (out / "notes.txt").write_text("mine\n")
    before = _snapshot(out)
    with pytest.raises(InputError, match=r"notes\.txt.*--overwrite") as err:
        _write_new(out)
    assert str(out) in str(err.value) and "\n" not in str(err.value)
    assert _snapshot(out) == before
    assert _no_temporaries(tmp_path)


def test_overwrite_replaces_only_munirank_files_and_keeps_the_others(tmp_path):
    out = _munirank_folder(tmp_path / "fit")
    (out / "notes.txt").write_text("mine\n")
    (out / "drafts").mkdir()
    (out / "drafts" / "a.txt").write_text("draft\n")
    _write_new(out, overwrite=True)
    assert sorted(p.name for p in out.iterdir()) == [dn.MARKER, "drafts", "municipalities.csv",
                                                      "notes.txt"]
    assert (out / "municipalities.csv").read_text() == "new\n"  # stale.csv went with the old
    assert (out / "notes.txt").read_text() == "mine\n"
    assert (out / "drafts" / "a.txt").read_text() == "draft\n"
    assert json.loads((out / dn.MARKER).read_text())["entries"] == ["municipalities.csv"]
    with pytest.raises(InputError, match="notes"):  # still the user's folder next time
        _write_new(out)
    assert _no_temporaries(tmp_path)


def test_a_failure_inside_leaves_the_previous_output_whole(tmp_path):
    out = _munirank_folder(tmp_path / "fit")
    before = _snapshot(out)
    with pytest.raises(RuntimeError), dn.atomic_folder(out, command="fit") as tmp:
        (tmp / "municipalities.csv").write_text("half")
        raise RuntimeError("the fit failed")
    assert _snapshot(out) == before
    assert _no_temporaries(tmp_path)


def test_a_file_the_user_saves_meanwhile_stops_the_replacement(tmp_path):
    out = _munirank_folder(tmp_path / "fit")
    with pytest.raises(InputError, match="notes"), dn.atomic_folder(out, command="fit") as tmp:
        (tmp / "municipalities.csv").write_text("new\n")
        (out / "notes.txt").write_text("saved while the fit ran\n")
    assert (out / "notes.txt").is_file() and (out / "municipalities.csv").read_text() == "old\n"
    assert _no_temporaries(tmp_path)


def test_an_output_folder_that_holds_an_input_is_refused(tmp_path):
    out = _munirank_folder(tmp_path / "sim", command="simulate")
    with pytest.raises(InputError, match="input"):
        dn.claim_folder(out, inputs=[out / "municipalities.csv"])
    dn.claim_folder(out, inputs=[tmp_path / "elsewhere.csv"])


# --- runs that were killed --------------------------------------------------------------------

def test_temporaries_of_killed_runs_are_removed_and_an_output_moved_aside_comes_back(tmp_path):
    dead, alive = _dead_pid(), os.getpid()
    out = tmp_path / "fit"
    moved = _munirank_folder(tmp_path / f".fit.old-{dead}")  # killed between the two renames
    (tmp_path / f".fit.partial-{dead}-abc").mkdir()
    (tmp_path / f".fit.partial-{alive}-def").mkdir()  # a run still going: left alone
    (tmp_path / f".other.partial-{dead}-x").mkdir()  # another output's: not ours to judge
    dn.claim_folder(out)
    assert (out / "municipalities.csv").read_text() == "old\n"
    assert not moved.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        f".fit.partial-{alive}-def", f".other.partial-{dead}-x", "fit"]


# --- writing into a folder as one goes (study, bench) -----------------------------------------

def test_prepare_continues_its_own_command_and_replaces_another(tmp_path, caplog):
    out = tmp_path / "s"
    dn.prepare_folder(out, command="study")
    (out / "replicates").mkdir()
    (out / "replicates" / "rep_0000.json").write_text("{}")
    with caplog.at_level(logging.INFO, logger="munirank"):
        assert dn.prepare_folder(out, command="study").command == "study"
    assert (out / "replicates" / "rep_0000.json").is_file()
    assert "continuing" in caplog.text
    fit = _munirank_folder(tmp_path / "f")
    dn.prepare_folder(fit, command="bench")
    assert sorted(p.name for p in fit.iterdir()) == [dn.MARKER]
    user = _user_folder(tmp_path / "u")
    with pytest.raises(InputError, match="notes"):
        dn.prepare_folder(user, command="bench")
    assert sorted(p.name for p in user.iterdir()) == ["notes.txt"]
    dn.prepare_folder(user, command="bench", overwrite=True)
    assert (user / "notes.txt").is_file() and (user / dn.MARKER).is_file()


# --- single files -----------------------------------------------------------------------------

def _pairwise_csv(path: Path) -> Path:
    pd.DataFrame({"municipality": ["A", "B"], "A": [0.0, 0.3], "B": [0.7, 0.0]}).to_csv(
        path, index=False)
    return path


def test_munirank_files_are_recognised_by_their_content(tmp_path):
    report = tmp_path / "r.html"
    report.write_text('<html><head><meta name="generator" content="munirank 0.1.0">')
    assert dn.written_by_munirank(report)
    assert dn.written_by_munirank(_pairwise_csv(tmp_path / "p.csv"))
    other = tmp_path / "o.csv"
    pd.DataFrame({"municipality": ["A", "B"], "A": [0.0, 3.0], "B": [0.7, 0.0]}).to_csv(
        other, index=False)
    assert not dn.written_by_munirank(other)  # 3.0 is no probability
    (tmp_path / "mine.html").write_text("<html><head><title>mine</title>")
    assert not dn.written_by_munirank(tmp_path / "mine.html")
    (tmp_path / "bin.csv").write_bytes(np.arange(256, dtype=np.uint8).tobytes())
    assert not dn.written_by_munirank(tmp_path / "bin.csv")


def test_files_replace_their_own_kind_and_refuse_the_rest(tmp_path):
    out = _pairwise_csv(tmp_path / "p.csv")
    with dn.atomic_file(out) as tmp:
        tmp.write_text("new")
    assert out.read_text() == "new"
    with pytest.raises(InputError, match="did not write"), dn.atomic_file(out) as tmp:
        tmp.write_text("newer")
    assert out.read_text() == "new"  # "new" is not a munirank file any more
    with dn.atomic_file(out, overwrite=True) as tmp:
        tmp.write_text("newer")
    assert out.read_text() == "newer"
    for overwrite in (False, True):
        with pytest.raises(InputError, match="is a folder"):
            dn.claim_file(tmp_path, overwrite=overwrite)
    assert _no_temporaries(tmp_path)


def test_a_file_written_into_a_munirank_folder_joins_its_entries(tmp_path):
    fit = _munirank_folder(tmp_path / "fit")
    with dn.atomic_file(fit / "report.html") as tmp:
        tmp.write_text('<meta name="generator" content="munirank">')
    assert "report.html" in json.loads((fit / dn.MARKER).read_text())["entries"]
    _write_new(fit)  # the next fit may replace the folder, report and all


# --- every command on the command line --------------------------------------------------------

# Inputs that would fail (missing files): a refusal must come first, naming the output.
FOLDER_COMMANDS = {
    "simulate": ["simulate", "--preset", "tiny"],
    "fit": ["fit", "missing.csv", "--spec", "missing.toml"],
    "compare": ["compare", "missing.csv", "--spec", "missing.toml"],
    "check": ["check", "missing.csv", "--spec", "missing.toml"],
    "reanalyse": ["reanalyse", "missing.csv"],
    "study": ["study", "--preset", "tiny", "--replicates", "1"],
    "bench": ["bench", "--cases", "frequentist"],
}


@pytest.mark.parametrize("command", FOLDER_COMMANDS)
@pytest.mark.parametrize("case", ["user folder", "file", "file --overwrite"])
def test_every_folder_command_refuses_what_munirank_did_not_write(tmp_path, capsys, command,
                                                                   case):
    out = tmp_path / "out"
    if case == "user folder":
        _user_folder(out)
    else:
        out.write_text("the user's file\n")
    before = sorted(tmp_path.rglob("*"))
    args = [*FOLDER_COMMANDS[command], "--out", str(out)]
    code = run([*args, "--overwrite"] if case.endswith("--overwrite") else args)
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith(f"munirank: error: {out}: ") and "\n" not in err
    assert ("notes.txt" in err) if case == "user folder" else ("is a file" in err)
    assert sorted(tmp_path.rglob("*")) == before


@pytest.mark.parametrize("command", ["report", "pairwise"])
@pytest.mark.parametrize("case", ["user file", "folder", "folder --overwrite"])
def test_every_file_command_refuses_what_munirank_did_not_write(tmp_path, capsys, command,
                                                                 case):
    out = tmp_path / "out.csv"
    if case == "user file":
        out.write_text("municipality,notes\nA,mine\n")
    else:
        out.mkdir()
    args = {"report": ["report", str(tmp_path / "nofit"), "--out", str(out)],
            "pairwise": ["pairwise", str(tmp_path / "nofit"), "--municipalities", "A,B",
                         "--out", str(out)]}[command]
    code = run([*args, "--overwrite"] if case.endswith("--overwrite") else args)
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err and str(out) in err
    assert ("did not write" in err) if case == "user file" else ("is a folder" in err)
    assert out.is_dir() or out.read_text() == "municipality,notes\nA,mine\n"


def _sim(tmp_path: Path) -> Path:
    assert run(["simulate", "--preset", "tiny", "--seed", "1", "--out",
                str(tmp_path / "data")]) == 0
    return tmp_path / "data"


def _three_cases(tmp_path: Path, capsys, args: list[str], expected: str, previous: str) -> None:
    """A munirank folder (of ``previous``) replaced; a user's folder kept with --overwrite."""
    theirs = _munirank_folder(tmp_path / "theirs", command=previous)
    capsys.readouterr()
    assert run([*args, "--out", str(theirs)]) == 0
    err = capsys.readouterr().err
    assert f"replaced the earlier output of `munirank {previous}` in {theirs}" in err
    assert (theirs / expected).is_file() and not (theirs / "stale.csv").exists()
    assert json.loads((theirs / dn.MARKER).read_text())["command"] == args[0]
    user = _user_folder(tmp_path / "user")
    assert run([*args, "--out", str(user), "--overwrite"]) == 0
    assert (user / "notes.txt").read_text() == "my own notes\n" and (user / expected).is_file()
    assert _no_temporaries(tmp_path)


def test_simulate_replaces_its_folders_and_keeps_a_users_files(tmp_path, capsys):
    _three_cases(tmp_path, capsys, ["simulate", "--preset", "tiny"], "spells.csv", "fit")


def test_fit_replaces_its_folders_and_keeps_a_users_files(tmp_path, capsys):
    data = _sim(tmp_path)
    _three_cases(tmp_path, capsys, ["fit", str(data / "spells.csv"), "--spec",
                                    str(data / "spec.toml"), *SHORT], "posterior.nc", "compare")


def test_fit_into_the_folder_of_its_own_data_is_refused(tmp_path, capsys):
    data = _sim(tmp_path)
    before = _snapshot(data)
    code = run(["fit", str(data / "spells.csv"), "--spec", str(data / "spec.toml"), "--out",
                str(data), *SHORT])
    assert code == 2 and "holds this command's input" in capsys.readouterr().err
    assert _snapshot(data) == before


def test_compare_replaces_its_folders_and_keeps_a_users_files(tmp_path, capsys):
    data = _sim(tmp_path)
    _three_cases(tmp_path, capsys, ["compare", str(data / "spells.csv"), "--spec",
                                    str(data / "spec.toml"), *SHORT], "comparison.csv", "fit")


def test_reanalyse_replaces_its_folders_and_keeps_a_users_files(tmp_path, capsys):
    from munirank.established.published import simulate_table

    table = tmp_path / "published.csv"
    simulate_table(12, seed=3).to_csv(table, index=False)
    _three_cases(tmp_path, capsys, ["reanalyse", str(table), *SHORT], "kappa.json", "fit")


@pytest.mark.slow
def test_check_replaces_its_folders_and_keeps_a_users_files(tmp_path, capsys):
    data = _sim(tmp_path)
    _three_cases(tmp_path, capsys, ["check", str(data / "spells.csv"), "--spec",
                                    str(data / "spec.toml"), "--models", "exponential",
                                    "--draws", "200", "--tune", "100", "--chains", "1",
                                    "--quiet"], "loo.csv", "fit")


def test_report_and_pairwise_replace_their_files_and_keep_others_unless_told(tmp_path, capsys):
    data = _sim(tmp_path)
    fit = tmp_path / "fit"
    assert run(["fit", str(data / "spells.csv"), "--spec", str(data / "spec.toml"), "--out",
                str(fit), *SHORT]) == 0
    names = pd.read_csv(fit / "municipalities.csv", dtype={"municipality": str})["municipality"]
    pair = ["pairwise", str(fit), "--municipalities", ",".join(names[:3])]
    for args, out in ((["report", str(fit)], fit / "report.html"),
                      (pair, tmp_path / "pairs.csv")):
        assert run([*args, "--out", str(out)]) == 0
        capsys.readouterr()
        assert run([*args, "--out", str(out)]) == 0  # its own: replaced, and said
        assert f"munirank: replaced {out}" in capsys.readouterr().err
        out.write_text("the user's own\n")
        assert run([*args, "--out", str(out)]) == 2
        assert out.read_text() == "the user's own\n"
        assert run([*args, "--out", str(out), "--overwrite"]) == 0
        assert dn.written_by_munirank(out)
    # the report went into the fit folder: the next fit there replaces it with the rest
    assert run(["fit", str(data / "spells.csv"), "--spec", str(data / "spec.toml"), "--out",
                str(fit), *SHORT]) == 0
    assert not (fit / "report.html").exists()
