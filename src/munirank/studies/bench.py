"""``munirank bench``: speed and scale figures, all measured in one run on this machine.

Each case runs in a fresh Python process (``python -m munirank.bench --case ...``), so that
compilation is not shared between cases and the peak resident memory of the case (its own
and its children's, e.g. PyMC's chain processes) is its own. Cases:

- ``nutpie``: the default fit of ``dk-1999-2005`` (``munirank fit``, 4 chains x 1000 draws);
- ``pymc``: the same model and settings sampled by PyMC's own NUTS;
- ``nutpie-cold``: ``nutpie`` with empty PyTensor and numba caches, what the first fit of a
  model on a new machine costs (the other cases run on warm caches, as refits do);
- ``frequentist``: the AKF-style lifelines fixed-effects fit of ``munirank compare``;
- ``laplace``: the Laplace approximation on ``dk-1999-2005``, scored against ``nutpie``;
- ``scale-nuts`` / ``scale-laplace``: ``dk-1999-2005`` scaled to ``--scale-spells`` spells and
  ``--scale-municipalities`` municipalities, NUTS and Laplace, Laplace scored against NUTS;
- ``outcomes``: the competing-outcomes fit (``[data] outcome``, two cause-specific hazards)
  of ``dk-outcomes`` (the dk register with self-support and education), alternating with
  ``nutpie``; the ratio of their whole commands is issue 26's target (at most 2);
- ``study-replicate``: one replicate of ``munirank study`` on ``dk-1999-2005`` (simulate, both
  methods, scoring) in one process: its overhead apart from sampling;
- ``periods``: the default fit of ``dk-two-periods`` (two measurements of half the dk register
  each, ``[data] period``; :mod:`munirank.model.periods`), whose whole command is compared
  with ``nutpie``'s (``periods_command_over_nutpie``; issue 25's target: at most 2);
- ``episodes``: ``munirank episodes`` on register extracts of ``--episodes-persons`` persons
  with Poisson(1.6) moves each, CSV with text dates, reading and writing included
  (:mod:`munirank.studies.bench_episodes`);
- ``check``: ``munirank check`` on ``dk-1999-2005`` (the chosen model and its six
  alternatives), its whole command and each model's seconds set against ``nutpie``'s
  (:mod:`munirank.studies.bench_check`).

Ratios are the figures that count (these machines are shared); bench.json records the load
average before and after each case so that a noisy run can be recognised. Before any timed
case, one short untimed fit each of ``nutpie``, ``pymc`` and ``laplace`` (and a short
``check`` for the check case) fills the compile caches. ``nutpie`` and ``pymc`` then run
``repeats`` times, alternating; their ratios are the medians of the ratios of each pair of
runs (so that a slow spell of the machine touches both), and each case's row is its median
run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

DK_SPELLS = 23_563
LAPLACE_DRAWS = 250
CASES = ("nutpie", "pymc", "nutpie-cold", "frequentist", "laplace", "scale-nuts",
         "scale-laplace", "study-replicate", "episodes", "check", "periods", "outcomes")
PAIRED = ("nutpie", "pymc", "outcomes", "check")
"""The cases run ``repeats`` times, alternating, and compared pair by pair: a ratio of two
cases is the median of its pairs, each measured minutes apart at most (on the shared 2-core
machine of issue 29 the same fit's drawing took 5.4-7.3 s from one run to the next)."""
REPEATS = 3
TARGETS = {  # issue 23: whole commands, from process start to the last file
    "nutpie_command_seconds_max": 6.0,
    "nutpie_not_sampling_seconds_max": 1.5,
    "ess_all_per_command_second_ratio_min": 3.0,
    "nutpie_cold_command_seconds_max": 20.0,
    "scale_nuts_command_seconds_max": 150.0,
    "scale_nuts_peak_gib_max": 3.0,
    "scale_approx_wall_seconds_max": 120.0,
    "scale_approx_p_top10_diff_max": 0.05,
    "episodes_wall_seconds_max": 30.0,
    "outcomes_over_nutpie_command_seconds_max": 2.0,  # issue 26
    # issue 29: the whole check command against the whole fit command, and each alternative
    "check_over_fit_max": 6.0,
    "alternative_cpu_over_fit_max": 2.0,
    "periods_command_over_nutpie_max": 2.0,  # issue 25: two periods at most twice one
}


def _children_cpu() -> float:
    """User and system CPU seconds of the finished child processes (and theirs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _peak_gib() -> float:
    """Peak resident memory of this process and of its largest child, GiB (Linux: KiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own + kids) / 2**20


def _fit_case(data: Path, out: Path, **options: Any) -> dict[str, Any]:
    """One ``munirank fit`` through the API; the figures bench reports about it."""
    from munirank import api

    t0, cpu0 = time.perf_counter(), time.process_time()
    result = api.fit(data / "spells.csv", spec=data / "spec.toml", out=out,
                     progressbar=False, **options)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - cpu0
    run = json.loads((out / "run.json").read_text())
    timings = run["timings"]
    diag = result.diagnostics
    sampling = timings["sampling_seconds"]
    ess_u = float(diag["ess_bulk_min_effects"])
    return {
        "wall_seconds": wall,
        "cpu_seconds": cpu,  # every thread of this process, in the fit (imports excluded)
        # the gate's figure: the smallest bulk ESS of every reported parameter, and whose
        "ess_bulk_min": float(diag["ess_bulk_min"]),
        "ess_bulk_min_parameter": diag.get("ess_bulk_min_parameter"),
        "compile_seconds": timings.get("compile_seconds"),
        "sampling_seconds": sampling,
        "draw_seconds": timings.get("draw_seconds"),
        "effects_ranks_seconds": timings.get("effects_ranks_seconds"),
        "ess_bulk_min_u": ess_u,
        "ess_per_second": ess_u / sampling,
        # the samplers' own time (tuning and draws, no compilation): what a refit of an
        # already compiled model costs, e.g. in a study
        "ess_per_draw_second": ess_u / timings["draw_seconds"] if timings.get("draw_seconds")
        else None,
        "rhat_max": diag["rhat_max"],
        "divergences": diag["divergences"],
        "tune": diag.get("tune"),
        "converged": diag["converged"],
        "n_episodes": run["n_episodes"],
    }


def _frequentist_case(data: Path) -> dict[str, Any]:
    from munirank.established import frequentist
    from munirank.input.episodes import load_episodes
    from munirank.input.spec import load_spec

    t0 = time.perf_counter()
    episodes = load_episodes(data / "spells.csv", load_spec(data / "spec.toml"))
    t1 = time.perf_counter()
    table = frequentist.benchmark(episodes)
    t2 = time.perf_counter()
    return {"wall_seconds": t2 - t0, "fit_seconds": t2 - t1,
            "n_ranked": int(table["freq_rank"].notna().sum())}


def _replicate_case(out: Path, draws: int | None) -> dict[str, Any]:
    """One study replicate in this process: its seconds, and those of its fit's sampling."""
    from munirank.studies.replicates import run_replicate

    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    result = run_replicate("dk-1999-2005", 0, 1, str(out), {},
                           {} if draws is None else {"draws": draws}, 80)
    wall = time.perf_counter() - t0
    fit = result.get("fit_timings", {})
    return {"wall_seconds": wall, "compile_seconds": fit.get("compile_seconds"),
            "draw_seconds": fit.get("draw_seconds"),
            "overhead_seconds": wall - (fit.get("draw_seconds") or 0.0),
            "converged": result["converged"]}


def run_case(case: str, data: Path, out: Path, draws: int | None,
             tune: int | None = None) -> dict[str, Any]:
    """Run one case in this process (called in a fresh subprocess by :func:`bench`)."""
    load0 = os.getloadavg()[0]
    if case == "episodes":
        from munirank.studies import bench_episodes

        figures = bench_episodes.run_case(data, out)
    elif case == "frequentist":
        figures = _frequentist_case(data)
    elif case == "study-replicate":
        figures = _replicate_case(out, draws)
    elif case == "check":
        from munirank.studies import bench_check

        figures = bench_check.run_case(data, out, draws, tune)
    else:
        options: dict[str, Any] = {"draws": draws, "tune": tune}
        if case == "pymc":
            options["sampler"] = "pymc"
        if case.endswith("laplace"):
            options["method"] = "laplace"
            # independent draws: 4 x 250 match the Monte Carlo precision of the NUTS default
            # (4 x 1000 correlated draws, minimum bulk ESS ~1,400 on dk-1999-2005)
            options["draws"] = draws or LAPLACE_DRAWS
        figures = _fit_case(data, out, **options)
    figures.update(case=case, peak_gib=_peak_gib(), load_before=load0,
                   load_after=os.getloadavg()[0])
    return figures


def agreement(approx: Path, exact: Path) -> dict[str, float]:
    """Largest differences between two fits' municipality tables (approximation vs NUTS)."""
    a = pd.read_csv(approx / "municipalities.csv", index_col="municipality")
    b = pd.read_csv(exact / "municipalities.csv", index_col="municipality").loc[a.index]
    top = [c for c in a.columns if c.startswith("p_top")][0]
    bottom = [c for c in a.columns if c.startswith("p_bottom")][0]
    return {
        "p_top_max_abs_diff": float((a[top] - b[top]).abs().max()),
        "p_bottom_max_abs_diff": float((a[bottom] - b[bottom]).abs().max()),
        "effect_months_mean_max_abs_diff": float(
            (a["effect_months_mean"] - b["effect_months_mean"]).abs().max()),
        "effect_months_lo_max_abs_diff": float(
            (a["effect_months_lo"] - b["effect_months_lo"]).abs().max()),
        "effect_months_hi_max_abs_diff": float(
            (a["effect_months_hi"] - b["effect_months_hi"]).abs().max()),
        "rank_mean_max_abs_diff": float((a["rank_mean"] - b["rank_mean"]).abs().max()),
    }


def _simulate(folder: Path, seed: int, preset: str = "dk-1999-2005", **options: Any) -> Path:
    from munirank import api

    if not (folder / "spells.csv").is_file():
        api.simulate(preset, seed=seed, out=folder, **options)
    return folder


def _simulate_periods(folder: Path, seed: int) -> Path:
    from munirank import api

    if not (folder / "spells.csv").is_file():
        api.simulate("dk-two-periods", seed=seed, out=folder)
    return folder


def _subprocess(case: str, data: Path, out: Path, draws: int | None,
                tune: int | None = None) -> dict[str, Any]:
    result = out.with_suffix(".json")
    cmd = [sys.executable, "-m", "munirank.studies.bench", "--case", case, "--data", str(data),
           "--fit-out", str(out), "--result", str(result)]
    if draws is not None:
        cmd += ["--draws", str(draws)]
    if tune is not None:
        cmd += ["--tune", str(tune)]
    env = dict(os.environ)
    if case == "nutpie-cold":  # empty compile caches, PyTensor's and numba's own
        cold = out.with_name(out.name + "-caches")
        shutil.rmtree(cold, ignore_errors=True)
        env["PYTENSOR_FLAGS"] = ",".join(
            filter(None, [env.get("PYTENSOR_FLAGS"), f"base_compiledir={cold / 'pytensor'}"]))
        env["NUMBA_CACHE_DIR"] = str(cold / "numba")
    t0 = time.perf_counter()
    cpu0 = _children_cpu()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if proc.returncode not in (0, 3):  # 3: fitted but not converged (recorded, not fatal)
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"case": case, "error": tail[0], "process_seconds": time.perf_counter() - t0}
    figures = json.loads(result.read_text())
    # the whole command: a fresh process, from its start to the last file written
    figures["process_seconds"] = command = time.perf_counter() - t0
    # its CPU seconds, every thread and any process it started and waited for
    figures["process_cpu_seconds"] = _children_cpu() - cpu0
    figures["fit_dir"] = str(out)
    if figures.get("draw_seconds"):
        figures["not_sampling_seconds"] = command - figures["draw_seconds"]
    if figures.get("ess_bulk_min"):
        figures["ess_all_per_command_second"] = figures["ess_bulk_min"] / command
    return figures


def _warm_up(cases: list[str], data: dict[str, Path], work: Path) -> None:
    """Short untimed fits that fill the compile caches, so that no timed case compiles cold."""
    for case in cases:
        print(f"bench: {case}: warm-up fit (fills the compile caches, not timed) ...", flush=True)
        _subprocess(case, data.get(case, data["nutpie"]), work / f"warmup-{case}", draws=20,
                    tune=20)


def _paired_runs(paired: list[str], data: dict[str, Path], work: Path, draws: int | None,
                 repeats: int) -> dict[str, dict[str, Any]]:
    """``repeats`` alternating runs of each paired case; the median rows."""
    runs: dict[str, list[dict[str, Any]]] = {c: [] for c in paired}
    for i in range(repeats):
        for case in paired:
            print(f"bench: {case} (run {i + 1} of {repeats}) ...", flush=True)
            runs[case].append(_subprocess(case, data.get(case, data["nutpie"]),
                                          work / f"fit-{case}-{i + 1}", draws))
            print(f"bench: {case}: {_one_line(runs[case][-1])}", flush=True)
    out = {}
    for case, rs in runs.items():
        ok = [r for r in rs if "error" not in r]
        if not ok:
            out[case] = rs[0]
            continue
        # the median run by ESS per second, or by its seconds where it has none (check)
        median = sorted(ok, key=lambda r: r.get("ess_per_second", -r["process_seconds"]))[
            (len(ok) - 1) // 2]
        out[case] = {**median, "runs": rs}
    return out


def bench(out: str | Path, *, cases: tuple[str, ...] = CASES, seed: int = 1,
          scale_spells: int = 1_000_000, scale_municipalities: int = 400,
          draws: int | None = None, repeats: int = REPEATS, episodes_persons: int = 1_000_000,
          overwrite: bool = False) -> dict[str, Any]:
    """Run the benchmark cases and write ``bench.json`` and ``bench.txt`` under ``out``.

    Parameters
    ----------
    out : str or Path
        Output folder (simulated data and fits are kept under ``out/work``).
    cases : tuple of str
        Which of :data:`CASES` to run.
    seed : int
        Seed of the simulated registers and of the fits.
    scale_spells, scale_municipalities : int
        Size of the scale runs.
    draws : int, optional
        Draws per chain for every fit (default: the spec's, 1000).
    repeats : int
        Runs of each of :data:`PAIRED`.
    episodes_persons : int
        Persons in the register extracts of the ``episodes`` case.
    overwrite : bool
        Write into a folder that holds files munirank did not write (they are kept; see
        :mod:`munirank.output.destinations`). A folder of an earlier bench is reused.

    Returns
    -------
    dict
        What bench.json holds: per case figures, ratios and targets.
    """
    from munirank.output import destinations

    out = Path(out)
    destinations.prepare_folder(out, command="bench", overwrite=overwrite)
    work = out / "work"
    work.mkdir(parents=True, exist_ok=True)
    dk = work / "dk"
    if set(cases) - {"episodes"}:
        _simulate(dk, seed)
    scaled = None
    if any(c.startswith("scale") for c in cases):  # before any fit: its sizes may not fit
        named = 72
        scaled = _simulate(work / f"scale-{scale_spells}", seed, scale=scale_spells / DK_SPELLS,
                           n_small=max(scale_municipalities - named, 0))
    periods = _simulate_periods(work / "dk-two-periods", seed) if "periods" in cases else None
    results: dict[str, dict[str, Any]] = {}
    paired = [c for c in PAIRED if c in cases]
    data_of = {"nutpie": dk}
    if "outcomes" in cases:
        data_of["outcomes"] = _simulate(work / "dk-outcomes", seed, "dk-outcomes")
    if periods is not None:
        data_of["periods"] = periods
        _warm_up(["periods"], data_of, work)
    # laplace warms the scale-laplace case too: the compiled graphs do not depend on the size
    _warm_up([c for c in (*PAIRED, "laplace", "check") if c in cases
              or (c == "laplace" and "scale-laplace" in cases)], data_of, work)
    if paired:
        results.update(_paired_runs(paired, data_of, work, draws, repeats))
    for case in cases:
        if case in paired:
            continue
        if case == "episodes":
            from munirank.studies.bench_episodes import write_registers

            data = write_registers(work / f"registers-{episodes_persons}", episodes_persons,
                                   seed)
        else:
            data = scaled if case.startswith("scale") and scaled is not None else dk
            data = periods if case == "periods" and periods is not None else data
        print(f"bench: {case} ...", flush=True)
        target = work / (case if case == "episodes" else f"fit-{case}")
        results[case] = _subprocess(case, data, target, draws)
        print(f"bench: {case}: {_one_line(results[case])}", flush=True)
    summary = _summarise(results, work)
    report = {"machine": machine(),
              "seed": seed, "scale_spells": scale_spells, "episodes_persons": episodes_persons,
              "scale_municipalities": scale_municipalities, "cases": results, **summary,
              "targets": TARGETS}
    (out / "bench.json").write_text(json.dumps(report, indent=2, default=float) + "\n")
    text = table_text(report)
    (out / "bench.txt").write_text(text + "\n")
    print(text)
    return report


def machine() -> dict[str, Any]:
    """What the ratios depend on: the CPU, its vector width as LLVM sees it, and the versions.

    The nutpie/PyMC ratio is hardware-dependent: both samplers call the same compiled kernel,
    but PyMC adds a fixed Python cost per gradient, so a CPU that runs the kernel faster
    (e.g. with AVX-512) lowers the ratio. Measured: samplers' own time 4.4-4.8 times PyMC's on
    the machines of the earlier benches, 3.8-3.9 on an AMD EPYC with AVX-512 (LLVM: znver5).
    """
    import llvmlite.binding as llvm

    from munirank.output.files import versions

    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    features: dict[str, bool] = {}
    with contextlib.suppress(RuntimeError):  # LLVM cannot read the features on some hosts
        features = dict(llvm.get_host_cpu_features())
    vector = next((name for name in ("avx512f", "avx2", "avx", "sse2", "neon")
                   if features.get(name)), "unknown" if not features else "none")
    return {"cpus": os.cpu_count(), "cpu_model": model or platform.processor(),
            "llvm_cpu": llvm.get_host_cpu_name(), "vector": vector, **versions()}


def _one_line(r: dict[str, Any]) -> str:
    if "error" in r:
        return f"failed: {r['error']}"
    return ", ".join(f"{k} {v:.3g}" for k, v in r.items()
                     if isinstance(v, float) and k in ("wall_seconds", "ess_per_second",
                                                       "peak_gib"))


def _summarise(results: dict[str, dict[str, Any]], work: Path) -> dict[str, Any]:
    ratios: dict[str, float] = {}
    ranges: dict[str, list[float]] = {}
    agree: dict[str, dict[str, float]] = {}
    ok = {k: v for k, v in results.items() if "error" not in v}
    if "nutpie" in ok and "pymc" in ok:
        for key, name in (("ess_all_per_command_second",
                           "ess_all_per_command_second_nutpie_over_pymc"),
                          ("ess_per_second", "ess_per_second_nutpie_over_pymc"),
                          ("ess_per_draw_second", "ess_per_draw_second_nutpie_over_pymc")):
            each = _pair_ratios(ok["nutpie"], ok["pymc"], key)
            if each:
                ratios[name] = float(np.median(each))
                if len(each) > 1:
                    ranges[name] = [min(each), max(each)]
        wall = _pair_ratios(ok["pymc"], ok["nutpie"], "wall_seconds")
        if wall:
            ratios["wall_pymc_over_nutpie"] = float(np.median(wall))
    if "nutpie" in ok and "periods" in ok:
        ratios["periods_command_over_nutpie"] = (ok["periods"]["process_seconds"]
                                                 / ok["nutpie"]["process_seconds"])
    if "nutpie" in ok and "outcomes" in ok:
        each = _pair_ratios(ok["outcomes"], ok["nutpie"], "process_seconds")
        if each:
            ratios["outcomes_over_nutpie_command_seconds"] = float(np.median(each))
            if len(each) > 1:
                ranges["outcomes_over_nutpie_command_seconds"] = [min(each), max(each)]
    if "nutpie" in ok and "frequentist" in ok:
        ratios["wall_nutpie_over_frequentist"] = (ok["nutpie"]["wall_seconds"]
                                                  / ok["frequentist"]["wall_seconds"])
    for approx, exact in (("laplace", "nutpie"), ("scale-laplace", "scale-nuts")):
        if approx in ok and exact in ok:
            agree[approx] = agreement(Path(ok[approx].get("fit_dir", work / f"fit-{approx}")),
                                      Path(ok[exact].get("fit_dir", work / f"fit-{exact}")))
            ratios[f"wall_{exact}_over_{approx}"] = (ok[exact]["wall_seconds"]
                                                     / ok[approx]["wall_seconds"])
    if "check" in ok and "nutpie" in ok:
        from munirank.studies import bench_check

        pairs = bench_check.paired_ratios(ok["check"], ok["nutpie"])
        ratios.update(pairs["median"])
        ranges.update(pairs["ranges"])
    if "nutpie-cold" in ok and "nutpie" in ok:
        ratios["compile_cold_over_warm"] = (ok["nutpie-cold"]["compile_seconds"]
                                            / ok["nutpie"]["compile_seconds"])
    return {"ratios": ratios, "ratio_ranges": ranges, "agreement": agree}


def _pair_ratios(a: dict[str, Any], b: dict[str, Any], key: str) -> list[float]:
    """a[key] / b[key] for each pair of alternating runs (or of the single rows)."""
    runs_a, runs_b = a.get("runs", [a]), b.get("runs", [b])
    if len(runs_a) != len(runs_b):
        runs_a, runs_b = [a], [b]
    return [ra[key] / rb[key] for ra, rb in zip(runs_a, runs_b, strict=True)
            if "error" not in ra and "error" not in rb and ra.get(key) and rb.get(key)]


def table_text(report: dict[str, Any]) -> str:
    """The printed table: one row per case, then ratios and agreement."""
    cols = [("process_seconds", "command s"), ("not_sampling_seconds", "not sampling s"),
            ("compile_seconds", "compile s"), ("draw_seconds", "draws s"),
            ("ess_bulk_min", "min ESS all"), ("ess_bulk_min_u", "min ESS u"),
            ("ess_per_second", "ESS/s"), ("ess_per_draw_second", "ESS/draw s"),
            ("rhat_max", "R-hat max"),
            ("divergences", "div"), ("tune", "tune"), ("peak_gib", "peak GiB"),
            ("n_episodes", "episodes")]
    rows = []
    for case, r in report["cases"].items():
        if "error" in r:
            rows.append({"case": case, "wall s": f"failed: {r['error']}"})
            continue
        rows.append({"case": case, **{label: r.get(key) for key, label in cols}})
    table = pd.DataFrame(rows).set_index("case")
    lines = [table.to_string(float_format=lambda v: f"{v:.3g}", na_rep="")]
    if "llvm_cpu" in (m := report.get("machine", {})):  # older reports: cpus and python only
        lines.insert(0, f"machine: {m['cpus']} cpus, {m['cpu_model']} "
                        f"(LLVM {m['llvm_cpu']}, {m['vector']})")
    ranges = report.get("ratio_ranges", {})
    for k, v in report["ratios"].items():
        extra = (f" (median of {len(report['cases']['nutpie'].get('runs', []))} paired runs, "
                 f"range {ranges[k][0]:.2f}-{ranges[k][1]:.2f})" if k in ranges else "")
        lines.append(f"{k}: {v:.2f}{extra}")
    for k, v in report["agreement"].items():
        lines.append(f"{k} vs NUTS: " + ", ".join(f"{a} {b:.3f}" for a, b in v.items()))
    return "\n".join(lines)


def bench_command(args: argparse.Namespace) -> int:
    """``munirank bench``."""
    cases = tuple(c.strip() for c in args.cases.split(",")) if args.cases else CASES
    unknown = [c for c in cases if c not in CASES]
    if unknown:
        from munirank.errors import InputError

        raise InputError(f"unknown case(s) {', '.join(map(repr, unknown))}; known: "
                         f"{', '.join(CASES)}", option="--cases")
    bench(args.out, cases=cases, seed=args.seed, scale_spells=args.scale_spells,
          scale_municipalities=args.scale_municipalities, draws=args.draws,
          repeats=args.repeats, episodes_persons=args.episodes_persons,
          overwrite=args.overwrite)
    return 0


def _main() -> None:
    p = argparse.ArgumentParser(prog="python -m munirank.studies.bench")
    p.add_argument("--case", required=True, choices=CASES)
    p.add_argument("--data", required=True, type=Path)
    p.add_argument("--fit-out", required=True, type=Path)
    p.add_argument("--result", required=True, type=Path)
    p.add_argument("--draws", type=int)
    p.add_argument("--tune", type=int)
    a = p.parse_args()
    figures = run_case(a.case, a.data, a.fit_out, a.draws, a.tune)
    a.result.write_text(json.dumps(figures, default=float))


if __name__ == "__main__":
    _main()

__all__ = ["CASES", "agreement", "bench", "bench_command", "run_case", "table_text"]
