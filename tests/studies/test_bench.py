import pytest

from munirank.studies.bench import _summarise, machine, table_text


def test_ratios_with_and_without_compilation(tmp_path):
    cases = {"nutpie": {"wall_seconds": 50.0, "ess_per_second": 100.0,
                        "ess_per_draw_second": 400.0},
             "pymc": {"wall_seconds": 60.0, "ess_per_second": 80.0, "ess_per_draw_second": 100.0},
             "frequentist": {"wall_seconds": 10.0}}
    summary = _summarise(cases, tmp_path)
    assert summary["ratios"]["ess_per_second_nutpie_over_pymc"] == pytest.approx(1.25)
    assert summary["ratios"]["ess_per_draw_second_nutpie_over_pymc"] == pytest.approx(4.0)
    assert summary["ratios"]["wall_nutpie_over_frequentist"] == pytest.approx(5.0)
    text = table_text({"cases": cases, **summary})
    assert "ESS/draw s" in text and "ess_per_draw_second_nutpie_over_pymc: 4.00" in text


def test_no_draw_ratio_when_a_sampler_failed(tmp_path):
    cases = {"nutpie": {"wall_seconds": 50.0, "ess_per_second": 100.0,
                        "ess_per_draw_second": 400.0}, "pymc": {"error": "boom"}}
    assert _summarise(cases, tmp_path)["ratios"] == {}


def _run(ess_per_second, wall):
    return {"ess_per_second": ess_per_second, "wall_seconds": wall,
            "ess_per_draw_second": 2 * ess_per_second, "compile_seconds": 2.0}


def test_paired_runs_give_the_median_of_the_pairs_ratios_and_their_range(tmp_path):
    # the machine slows down in run 2 for both samplers: pairing cancels it
    nutpie = [_run(600, 10), _run(300, 20), _run(560, 11)]
    pymc = [_run(150, 40), _run(75, 80), _run(160, 38)]
    cases = {"nutpie": {**nutpie[2], "runs": nutpie}, "pymc": {**pymc[0], "runs": pymc},
             "nutpie-cold": {**_run(100, 40), "compile_seconds": 20.0}}
    summary = _summarise(cases, tmp_path)
    assert summary["ratios"]["ess_per_second_nutpie_over_pymc"] == pytest.approx(4.0)
    assert summary["ratio_ranges"]["ess_per_second_nutpie_over_pymc"] == pytest.approx(
        [3.5, 4.0])
    assert summary["ratios"]["wall_pymc_over_nutpie"] == pytest.approx(4.0)
    assert summary["ratios"]["compile_cold_over_warm"] == pytest.approx(10.0)
    text = table_text({"cases": cases, **summary})
    assert "median of 3 paired runs, range 3.50-4.00" in text


def test_a_failed_run_drops_its_pair(tmp_path):
    nutpie = [_run(600, 10), {"error": "boom"}, _run(560, 11)]
    pymc = [_run(150, 40), _run(75, 80), _run(100, 38)]
    cases = {"nutpie": {**nutpie[0], "runs": nutpie}, "pymc": {**pymc[0], "runs": pymc}}
    ratios = _summarise(cases, tmp_path)["ratios"]
    assert ratios["ess_per_second_nutpie_over_pymc"] == pytest.approx((4.0 + 5.6) / 2)


def test_the_machine_record_names_the_cpu_and_the_versions():
    m = machine()
    # the ratios depend on the CPU's vector width: bench.json must say which CPU it was
    assert m["cpus"] >= 1 and m["llvm_cpu"] and m["vector"] in (
        "avx512f", "avx2", "avx", "sse2", "neon", "none", "unknown")
    assert m["nutpie"] and m["pymc"] and m["python"]
    text = table_text({"machine": m, "cases": {"frequentist": {"wall_seconds": 1.0}},
                       "ratios": {}, "agreement": {}})
    assert text.startswith(f"machine: {m['cpus']} cpus") and m["llvm_cpu"] in text


def test_bench_replaces_other_outputs_and_keeps_a_users_files(tmp_path, monkeypatch, capsys):
    """The cases themselves are stubbed: only where bench writes is tested here."""
    from conftest import assert_keeps_a_users_files
    from munirank.cli import run
    from munirank.output import destinations as dn
    from munirank.studies import bench as bn

    monkeypatch.setattr(bn, "_simulate", lambda folder, seed, **_: folder)
    monkeypatch.setattr(bn, "_warm_up", lambda *a, **k: None)
    monkeypatch.setattr(bn, "_subprocess", lambda case, *a, **k: {"case": case,
                                                                  "wall_seconds": 1.0})
    theirs = tmp_path / "theirs"
    with dn.atomic_folder(theirs, command="simulate") as tmp:
        (tmp / "spells.csv").write_text("simulated\n")
    args = ["bench", "--cases", "frequentist"]
    assert run([*args, "--out", str(theirs)]) == 0
    assert "replaced the earlier output of `munirank simulate`" in capsys.readouterr().err
    assert not (theirs / "spells.csv").exists() and (theirs / "bench.json").is_file()
    assert_keeps_a_users_files(args, tmp_path / "user", "bench.txt")


def test_the_episodes_case_times_the_command_on_register_extracts(tmp_path):
    import json

    from munirank.cli import run

    out = tmp_path / "bench"
    assert run(["bench", "--cases", "episodes", "--episodes-persons", "3000", "--out",
                str(out)]) == 0
    report = json.loads((out / "bench.json").read_text())
    case = report["cases"]["episodes"]
    assert case["persons"] == 3000 and case["residence_rows"] > 3000 * 2.4
    assert case["n_episodes"] > 3000 and case["wall_seconds"] > 0 and "error" not in case
    assert report["targets"]["episodes_wall_seconds_max"] == 30.0
    assert "episodes" in (out / "bench.txt").read_text()
    assert not (out / "work" / "dk").exists()  # no fit asked: no register simulated
