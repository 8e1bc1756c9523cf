"""Issue 8 beyond bad input: convergence gate, disclosure, safe writes, reproducibility.

Real short fits of the tiny preset, shared between tests (module-scoped). The register is
the tiny preset with person ids and times made distinctive (``zqpid...`` ids, times with
six decimals), so any row-level value that reaches an output file can be recognised.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from munirank.cli import run

ID_PREFIX = "zqpid"
MIN_CELL = 10
SHORT = ["--draws", "20", "--tune", "20", "--chains", "2", "--quiet"]  # ESS << 400
PERSON_GROUPS = {"constant_data", "observed_data", "log_likelihood", "posterior_predictive",
                 "prior_predictive", "predictions"}


# --- the register ---------------------------------------------------------------------------

def _six_decimals(thousandths: np.ndarray, shift: np.ndarray) -> list[str]:
    """Times in thousandths plus a shift in millionths (last digit never 0), as text."""
    micro = thousandths.astype(np.int64) * 1000 + shift
    return [f"{m // 1_000_000}.{m % 1_000_000:06d}" for m in micro]


@pytest.fixture(scope="module")
def register(tmp_path_factory):
    """Tiny preset (seed 1) with distinctive person ids and times, written as text."""
    from munirank.simulation.register import write_register

    folder = write_register("tiny", 1, tmp_path_factory.mktemp("safety_data"))
    spells = pd.read_csv(folder / "spells.csv")
    rng = np.random.default_rng(8)
    persons = spells["person_id"].unique()
    codes = rng.choice(16**8, size=len(persons), replace=False)
    ids = dict(zip(persons, (f"{ID_PREFIX}{c:08x}" for c in codes), strict=True))
    # One shift per person keeps back-to-back spells back to back; entry 0 stays 0.
    shift_of = dict(zip(persons, rng.integers(1, 100, size=len(persons)) * 10 - 1,
                        strict=True))
    shift = spells["person_id"].map(shift_of).to_numpy()
    start_k = np.round(spells["start"].to_numpy() * 1000).astype(np.int64)
    stop_k = np.round(spells["stop"].to_numpy() * 1000).astype(np.int64)
    start = _six_decimals(start_k, np.where(start_k > 0, shift, 0))
    stop = _six_decimals(stop_k, shift)
    text = spells.astype(object)
    text["person_id"] = spells["person_id"].map(ids)
    text["start"], text["stop"] = start, stop
    text.to_csv(folder / "spells.csv", index=False, lineterminator="\n")
    # Values that no 6-significant-digit output could print by chance: >= 7 digits.
    distinctive = {s for s in stop + start if float(s) >= 1.0}
    return {"dir": folder, "spells": folder / "spells.csv", "spec": folder / "spec.toml",
            "n_spells": len(spells), "n_persons": len(persons), "ids": set(ids.values()),
            "times": distinctive, "time_values": np.array(sorted(float(s) for s in distinctive)),
            "frame": pd.read_csv(folder / "spells.csv")}


def _fit(register, out: Path, *extra: str) -> dict:
    """``munirank fit`` in this process; exit code and stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = run(["fit", str(register["spells"]), "--spec", str(register["spec"]),
                    "--out", str(out), "--min-cell", str(MIN_CELL), *SHORT, *extra])
    return {"code": code, "stderr": err.getvalue(), "out": out}


@pytest.fixture(scope="module")
def gated(register, tmp_path_factory):
    """A fit far too short to converge, without --allow-unconverged (seed 1)."""
    return _fit(register, tmp_path_factory.mktemp("gated") / "fit", "--seed", "1")


@pytest.fixture(scope="module")
def allowed(register, tmp_path_factory):
    """The same data, spec and seed with --allow-unconverged (only the exit code differs)."""
    return _fit(register, tmp_path_factory.mktemp("allowed") / "fit", "--seed", "1",
                "--allow-unconverged")


@pytest.fixture(scope="module")
def reseeded(register, tmp_path_factory):
    return _fit(register, tmp_path_factory.mktemp("reseeded") / "fit", "--seed", "2",
                "--allow-unconverged")


@pytest.fixture(scope="module")
def report_html(gated, tmp_path_factory):
    html = tmp_path_factory.mktemp("report") / "r.html"
    assert run(["report", str(gated["out"]), "--out", str(html)]) == 0
    return html


# --- 1. convergence gate ----------------------------------------------------------------------

def test_unconverged_fit_exits_3_and_still_writes_flagged_outputs(gated):
    assert gated["code"] == 3
    assert "NOT CONVERGED" in gated["stderr"]
    out = gated["out"]
    for name in ("municipalities.csv", "covariates.csv", "diagnostics.json", "run.json",
                 "posterior.nc"):
        assert (out / name).is_file(), name
    table = pd.read_csv(out / "municipalities.csv")
    assert len(table) == 20
    assert table["converged"].dtype == bool
    assert not table["converged"].any()
    diag = json.loads((out / "diagnostics.json").read_text())
    assert diag["converged"] is False
    # the gate failed for a stated reason, not by accident
    assert diag["ess_bulk_min"] < 400 or diag["rhat_max"] > 1.01 or diag["divergences"] > 0


def test_report_of_unconverged_fit_shows_the_banner(report_html):
    html = report_html.read_text()
    assert 'id="not-converged-banner"' in html
    assert "did NOT converge" in html


def test_allow_unconverged_exits_0_but_still_flags(allowed):
    assert allowed["code"] == 0
    assert "NOT CONVERGED" in allowed["stderr"]
    table = pd.read_csv(allowed["out"] / "municipalities.csv")
    assert not table["converged"].any()
    assert json.loads((allowed["out"] / "diagnostics.json").read_text())["converged"] is False


# --- 2. disclosure ----------------------------------------------------------------------------

def _text_leaks(path: Path, register) -> list[str]:
    """Row-level values of the input found in a text file, and per-person row counts."""
    text = path.read_text(errors="replace")
    found = []
    if ID_PREFIX in text or "person_id" in text:
        found.append(f"{path.name}: person ids")
    numbers = set(re.findall(r"\d+\.\d+", text))
    times = numbers & register["times"]
    if times:
        found.append(f"{path.name}: {len(times)} input times, e.g. {sorted(times)[:3]}")
    rows = text.count("\n") if path.suffix != ".html" else text.lower().count("<tr")
    if rows >= min(register["n_spells"], register["n_persons"]):
        found.append(f"{path.name}: {rows} rows, as many as spells or persons")
    return found


def _netcdf_leaks(path: Path, register) -> list[str]:
    found = []
    if ID_PREFIX.encode() in path.read_bytes():
        found.append(f"{path.name}: person ids")
    per_person = {register["n_spells"], register["n_persons"]}
    with xr.open_datatree(path) as tree:
        for node in tree.subtree:
            if node.name in PERSON_GROUPS:
                found.append(f"{path.name}: group {node.path}")
            for name, array in node.dataset.variables.items():
                if set(array.shape) & per_person or {"episode", "person"} & set(array.dims):
                    found.append(f"{path.name}: {node.path}/{name} dims {dict(array.sizes)}")
                if array.dtype.kind == "f" and np.isin(array.values,
                                                       register["time_values"]).any():
                    found.append(f"{path.name}: {node.path}/{name} holds input times")
    return found


def _leaks(folder_or_file: Path, register) -> list[str]:
    paths = [folder_or_file] if folder_or_file.is_file() else sorted(
        p for p in folder_or_file.rglob("*") if p.is_file())
    found = []
    for p in paths:
        scan = _netcdf_leaks if p.suffix == ".nc" else _text_leaks
        found += scan(p, register)
    return found


def test_the_scan_finds_row_level_values(register, tmp_path):
    """The scan can fail: the input itself, and a posterior with a per-episode array."""
    assert len(_leaks(register["spells"], register)) == 3  # ids, times, rows
    bad = xr.DataTree.from_dict({
        "posterior": xr.Dataset({"mu": ("episode", np.zeros(register["n_spells"]))}),
        "observed_data": xr.Dataset({"t": ("x", register["time_values"][:3])}),
    })
    bad.to_netcdf(tmp_path / "bad.nc", engine="netcdf4")
    found = _leaks(tmp_path / "bad.nc", register)
    assert any("episode" in f for f in found)
    assert any("observed_data" in f for f in found)
    assert any("input times" in f for f in found)


def test_no_output_file_holds_row_level_values(gated, report_html, register):
    files = sorted(p.name for p in gated["out"].iterdir())
    assert {"municipalities.csv", "posterior.nc", "run.json"} <= set(files)
    assert _leaks(gated["out"], register) == []
    assert _leaks(report_html, register) == []


def test_counts_below_min_cell_are_blank_and_flagged(gated, register):
    table = pd.read_csv(gated["out"] / "municipalities.csv",
                        dtype={"municipality": str}).set_index("municipality")
    spells = register["frame"]
    n = spells.groupby("municipality").size()
    d = spells.groupby("municipality")["event"].sum()
    small = (n < MIN_CELL) | (d < MIN_CELL) | ((n - d) < MIN_CELL)
    assert small.any() and not small.all()  # the check below means something on tiny
    assert table["small_cell"].dtype == bool
    pd.testing.assert_series_equal(table["small_cell"].sort_index(), small.sort_index(),
                                   check_names=False)
    shown_n, shown_d = table["n_spells"], table["n_events"]
    assert shown_n.dropna().ge(MIN_CELL).all()
    assert shown_d.dropna().ge(MIN_CELL).all()
    for m in small[small].index:  # the small count (or the event count it reveals) is blank
        assert shown_n.isna()[m] or shown_d.isna()[m]
        if n[m] < MIN_CELL:
            assert shown_n.isna()[m]
        if d[m] < MIN_CELL or n[m] - d[m] < MIN_CELL:
            assert shown_d.isna()[m]
    for m in small[~small].index:
        assert shown_n[m] == n[m] and shown_d[m] == d[m]


# --- 3. interruption --------------------------------------------------------------------------

# The child marks the moment nutpie starts drawing (after compilation) on stderr, and the
# moment the posterior is written into the temporary output folder (then it waits there).
CHILD = textwrap.dedent("""
    import sys
    import time
    import nutpie
    import xarray as xr
    _sample = nutpie.sample
    def sample(*args, **kwargs):
        print("SAMPLING-STARTED", file=sys.stderr, flush=True)
        return _sample(*args, **kwargs)
    nutpie.sample = sample
    _to_netcdf = xr.DataTree.to_netcdf
    def to_netcdf(self, path, *args, **kwargs):
        _to_netcdf(self, path, *args, **kwargs)
        print("WRITING-STARTED", file=sys.stderr, flush=True)
        time.sleep(600)
    xr.DataTree.to_netcdf = to_netcdf
    from munirank.cli import main
    sys.argv = ["munirank", *sys.argv[1:]]
    main()
""")


def _interrupt(register, tmp_path, signum: int, *, out: Path | None = None,
               when: str = "SAMPLING-STARTED") -> tuple[int, str, Path]:
    if out is None:
        out = tmp_path / "runs" / "fit"
        out.parent.mkdir()
    draws = "100000" if when == "SAMPLING-STARTED" else "20"
    args = ["fit", str(register["spells"]), "--spec", str(register["spec"]), "--out", str(out),
            "--draws", draws, "--tune", "1000", "--chains", "2", "--quiet"]
    proc = subprocess.Popen([sys.executable, "-c", CHILD, *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    started = threading.Event()

    def read() -> None:
        for line in proc.stderr:
            lines.append(line)
            if when in line:
                started.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        if not started.wait(timeout=900):
            pytest.fail(f"{when} never came:\n" + "".join(lines[-20:]))
        time.sleep(3 if when == "SAMPLING-STARTED" else 0.5)  # inside sampling, or writing
        assert proc.poll() is None, "the fit ended before it could be interrupted"
        proc.send_signal(signum)
        code = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)
        proc.stderr.close()
    return code, "".join(lines), out


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)],
                         ids=["SIGINT", "SIGTERM"])
def test_interrupted_fit_writes_nothing(register, tmp_path, signum, code):
    got, stderr, out = _interrupt(register, tmp_path, signum)
    assert got == code, stderr[-2000:]
    assert "interrupted; no output written" in stderr
    assert "Traceback" not in stderr
    assert not out.exists()
    assert list(out.parent.iterdir()) == []  # no .fit.partial-* (or .fit.old-*) left beside


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_write_interrupted_over_an_earlier_fit_leaves_it_whole(register, gated, tmp_path,
                                                                 signum):
    """Issue 27: the signal comes while the new outputs are being written."""
    out = tmp_path / "runs" / "fit"
    shutil.copytree(gated["out"], out)
    before = _files(out)
    got, stderr, _ = _interrupt(register, tmp_path, signum, out=out, when="WRITING-STARTED")
    assert got == 128 + signum, stderr[-2000:]
    assert "interrupted; no output written" in stderr and "Traceback" not in stderr
    assert _files(out) == before
    assert [p.name for p in out.parent.iterdir()] == ["fit"]  # no temporary folder beside


def test_a_killed_write_is_cleaned_up_by_the_next_run(register, gated, tmp_path):
    """SIGKILL cannot be caught: its temporary folder stays until the next run removes it."""
    out = tmp_path / "runs" / "fit"
    shutil.copytree(gated["out"], out)
    before = _files(out)
    got, _, _ = _interrupt(register, tmp_path, signal.SIGKILL, out=out, when="WRITING-STARTED")
    assert got == -signal.SIGKILL
    assert _files(out) == before
    left = sorted(p.name for p in out.parent.iterdir() if p.name != "fit")
    assert len(left) == 1 and left[0].startswith(".fit.partial-")
    assert run(["report", str(out), "--out", str(tmp_path / "runs" / "r.html")]) == 0
    assert _fit(register, out, "--seed", "2")["code"] == 3  # any later run on that output
    assert sorted(p.name for p in out.parent.iterdir()) == ["fit", "r.html"]


# --- 4. reproducibility -----------------------------------------------------------------------

def _differences(a: Path, b: Path) -> str:
    """Which values of two municipalities.csv differ (for the failure message)."""
    ta, tb = pd.read_csv(a), pd.read_csv(b)
    if ta.shape != tb.shape or list(ta.columns) != list(tb.columns):
        return f"shapes {ta.shape} vs {tb.shape}"
    diff = ta.ne(tb) & ~(ta.isna() & tb.isna())
    cols = diff.any()
    return f"{int(diff.to_numpy().sum())} cells differ in columns {list(cols[cols].index)}"


def test_same_data_spec_and_seed_give_byte_identical_municipalities(gated, allowed):
    a, b = gated["out"] / "municipalities.csv", allowed["out"] / "municipalities.csv"
    assert a.read_bytes() == b.read_bytes(), _differences(a, b)
    assert (gated["out"] / "covariates.csv").read_bytes() == \
        (allowed["out"] / "covariates.csv").read_bytes()


def test_another_seed_changes_the_results(gated, reseeded):
    assert reseeded["code"] == 0
    a, b = gated["out"] / "municipalities.csv", reseeded["out"] / "municipalities.csv"
    assert a.read_bytes() != b.read_bytes()
    ta, tb = pd.read_csv(a), pd.read_csv(b)
    assert not np.allclose(ta["effect_months_mean"], tb["effect_months_mean"])


def test_run_json_records_versions_seed_and_hashes(gated, allowed, reseeded, register):
    infos = [json.loads((f["out"] / "run.json").read_text()) for f in (gated, allowed, reseeded)]
    info = infos[0]
    for name in ("pymc", "nutpie", "arviz-base", "arviz-stats", "numpy", "xarray", "munirank"):
        assert info["versions"][name] == metadata.version(name), name
    assert info["versions"]["python"] == ".".join(map(str, sys.version_info[:3]))
    assert [i["seed"] for i in infos] == [1, 1, 2]
    assert info["data_hash"] == hashlib.sha256(register["spells"].read_bytes()).hexdigest()
    assert {i["data_hash"] for i in infos} == {info["data_hash"]}
    assert re.fullmatch(r"[0-9a-f]{64}", info["spec_hash"])
    assert infos[1]["spec_hash"] == info["spec_hash"]
    assert info["spec"]["sampling"]["seed"] == 1
    assert info["spec"]["disclosure"]["min_cell"] == MIN_CELL
