"""The bad-input matrix: every case exits 2 with one line naming file, column and rows.

Each case starts from a small valid data set (spells.csv, municipal.csv, spec.toml with
Danish and Norwegian municipality names), breaks one thing and runs ``munirank fit``
in-process. Nothing may be written to the output folder, and no traceback may be shown.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tomli_w

from munirank.cli import run

NAMES = ["Høje Taastrup", "Århus", "Tromsø", "Ærø"]


def base_spells(n: int = 48, seed: int = 3) -> pd.DataFrame:
    """Valid spells: 4 municipalities, delayed entry, two numeric and one categorical."""
    rng = np.random.default_rng(seed)
    start = np.where(np.arange(n) % 5 == 0, rng.uniform(1, 6, n).round(3), 0.0)
    stop = (start + rng.uniform(2, 40, n)).round(3)
    stop[0] = 59.5
    return pd.DataFrame({
        "person_id": np.arange(1, n + 1),
        "municipality": [NAMES[i % 4] for i in range(n)],
        "start": start,
        "stop": stop,
        "event": (rng.uniform(size=n) < 0.6).astype(int),
        "male": rng.integers(0, 2, n),
        "age": rng.integers(18, 60, n).astype(float),
        "origin": [("Iran", "Irak", "Somalia")[i % 3] for i in range(n)],
    })


def base_municipal() -> pd.DataFrame:
    return pd.DataFrame({"municipality": NAMES, "unemployment": [5.1, 7.3, 4.2, 6.8],
                         "network": [1, 0, 0, 1]})


BASE_SPEC = {
    "data": {"group": "municipality", "time": "stop", "event": "event", "entry": "start",
             "municipal_table": "municipal.csv"},
    "covariates": {"individual": ["male", "age", "origin"], "categorical": ["origin"],
                   "municipal": ["unemployment"]},
    "outcome": {"horizon_months": 24},
}


@dataclass
class Inputs:
    """The files of one case, before they are written."""

    spells: pd.DataFrame = field(default_factory=base_spells)
    municipal: pd.DataFrame = field(default_factory=base_municipal)
    spec: dict = field(default_factory=lambda: {k: dict(v) for k, v in BASE_SPEC.items()})
    spells_name: str = "spells.csv"
    encoding: str = "utf-8"
    raw: dict[str, bytes] = field(default_factory=dict)
    folders: tuple[str, ...] = ()

    def write(self, folder: Path) -> Path:
        """Write the files (raw bytes win) and return the spells path."""
        files = {
            "spec.toml": tomli_w.dumps(self.spec).encode("utf-8"),
            "municipal.csv": self.municipal.to_csv(index=False).encode(self.encoding),
        }
        if self.spells_name.endswith(".csv"):
            files[self.spells_name] = self.spells.to_csv(index=False).encode(self.encoding)
        for name, content in {**files, **self.raw}.items():
            if name in self.folders:
                (folder / name).mkdir()
            else:
                (folder / name).write_bytes(content)
        return folder / self.spells_name


@dataclass(frozen=True)
class Case:
    """A broken input and what the one-line message must name."""

    break_it: Callable[[Inputs], None]
    file: str
    column: str | None = None
    rows: str | None = None
    says: str = ""


def _set(column: str, row: int, value: object) -> Callable[[Inputs], None]:
    """Set spells[column] at 1-based data row ``row``."""

    def f(i: Inputs) -> None:
        i.spells[column] = i.spells[column].astype(object)
        i.spells.loc[row - 1, column] = value

    return f


def _spec(section: str, key: str, value: object) -> Callable[[Inputs], None]:
    def f(i: Inputs) -> None:
        i.spec.setdefault(section, {})[key] = value

    return f


def _raw(name: str, content: bytes) -> Callable[[Inputs], None]:
    def f(i: Inputs) -> None:
        i.raw[name] = content

    return f


def _rename(old: str, new: str) -> Callable[[Inputs], None]:
    def f(i: Inputs) -> None:
        i.spells = i.spells.rename(columns={old: new})

    return f


def _duplicate_column(i: Inputs) -> None:
    i.spells.insert(3, "age_copy", i.spells["age"])
    i.spells = i.spells.rename(columns={"age_copy": "age"})


def _exit_before_entry(i: Inputs) -> None:
    i.spells.loc[6, "start"] = 30.0
    i.spells.loc[6, "stop"] = 12.5
    i.spells.loc[10, "stop"] = i.spells.loc[10, "start"]


def _constant_covariate(i: Inputs) -> None:
    i.spells["male"] = 0


def _collinear(i: Inputs) -> None:
    i.spells["age_months"] = i.spells["age"] * 12
    i.spec["covariates"]["individual"] = ["male", "age", "age_months", "origin"]


def _single_level_spell(i: Inputs) -> None:
    i.spells.loc[4, "origin"] = "Eritrea"


def _no_events(i: Inputs) -> None:
    i.spells["event"] = 0


def _unknown_municipality(i: Inputs) -> None:
    extra = pd.DataFrame({"municipality": ["Bærum"], "unemployment": [3.0], "network": [0]})
    i.municipal = pd.concat([i.municipal, extra], ignore_index=True)


def _missing_municipality(i: Inputs) -> None:
    i.municipal = i.municipal.iloc[:3]


def _duplicate_municipality(i: Inputs) -> None:
    i.municipal = pd.concat([i.municipal, i.municipal.iloc[[1]]], ignore_index=True)


def _municipal_constant(i: Inputs) -> None:
    i.municipal["unemployment"] = 5.0


def _municipal_collinear(i: Inputs) -> None:
    i.municipal["unemployment_pct"] = i.municipal["unemployment"] / 100
    i.spec["covariates"]["municipal"] = ["unemployment", "unemployment_pct"]


def _municipal_missing_value(i: Inputs) -> None:
    i.municipal["unemployment"] = i.municipal["unemployment"].astype(object)
    i.municipal.loc[2, "unemployment"] = None


def _latin1_undeclared(i: Inputs) -> None:
    i.encoding = "latin-1"


def _utf8_declared_latin1(i: Inputs) -> None:
    i.spec["data"]["encoding"] = "latin-1"


def _header_only(i: Inputs) -> None:
    i.raw["spells.csv"] = b"person_id,municipality,start,stop,event,male,age,origin\n"


def _semicolon(i: Inputs) -> None:
    i.raw["spells.csv"] = i.spells.to_csv(index=False, sep=";", decimal=",").encode()


def _folder(i: Inputs) -> None:
    i.folders = ("spells.csv",)


def _horizon_too_long(i: Inputs) -> None:
    i.spec["outcome"]["horizon_months"] = 120


def _municipal_column_missing(i: Inputs) -> None:
    i.spec["covariates"]["municipal"] = ["unemployment", "tax_base"]


CASES: dict[str, Case] = {
    "missing_column": Case(_rename("stop", "exit"), "spells.csv", "stop", says="missing"),
    "misnamed_group": Case(_rename("municipality", "kommune"), "spells.csv", "municipality",
                           says="missing"),
    "non_numeric_time": Case(_set("stop", 4, "12,5"), "spells.csv", "stop", "4",
                             says="not numeric"),
    "negative_time": Case(_set("stop", 7, -3.0), "spells.csv", "stop", "7"),
    "negative_entry": Case(_set("start", 3, -1.0), "spells.csv", "start", "3"),
    "infinite_time": Case(_set("stop", 5, "inf"), "spells.csv", "stop", "5"),
    "exit_before_entry": Case(_exit_before_entry, "spells.csv", "stop", "7, 11",
                              says="after entry"),
    "event_not_0_1": Case(_set("event", 8, 2), "spells.csv", "event", "8", says="0 or 1"),
    "event_text": Case(_set("event", 2, "yes"), "spells.csv", "event", "2"),
    "missing_time": Case(_set("stop", 11, None), "spells.csv", "stop", "11", says="missing"),
    "missing_event": Case(_set("event", 12, None), "spells.csv", "event", "12",
                          says="missing"),
    "missing_covariate": Case(_set("age", 6, None), "spells.csv", "age", "6", says="missing"),
    "missing_group": Case(_set("municipality", 9, None), "spells.csv", "municipality", "9",
                          says="missing"),
    "missing_categorical": Case(_set("origin", 13, None), "spells.csv", "origin", "13",
                                says="missing"),
    "duplicated_column": Case(_duplicate_column, "spells.csv", "age", says="duplicated"),
    "constant_covariate": Case(_constant_covariate, "spells.csv", "male", says="constant"),
    "collinear_covariate": Case(_collinear, "spells.csv", "age_months", says="collinear"),
    "single_spell_level": Case(_single_level_spell, "spells.csv", "origin", "5",
                               says="single spell"),
    "no_events": Case(_no_events, "spells.csv", "event", says="no events"),
    "horizon_too_long": Case(_horizon_too_long, "spells.csv", "stop", says="horizon"),
    "empty_file": Case(_raw("spells.csv", b""), "spells.csv", says="empty"),
    "header_only": Case(_header_only, "spells.csv", says="no data rows"),
    "binary_file": Case(_raw("spells.csv", bytes(range(256)) * 4), "spells.csv", says="binary"),
    "corrupt_parquet": Case(lambda i: (setattr(i, "spells_name", "spells.parquet"),
                                       i.raw.update({"spells.parquet": b"PAR1 not really"})),
                            "spells.parquet", says="cannot read"),
    "semicolon_separated": Case(_semicolon, "spells.csv", says="';'"),
    "folder_not_file": Case(_folder, "spells.csv", says="folder"),
    "unknown_file_type": Case(lambda i: (setattr(i, "spells_name", "spells.xlsx"),
                                         i.raw.update({"spells.xlsx": b"x"})),
                              "spells.xlsx", says="unknown file type"),
    "latin1_undeclared": Case(_latin1_undeclared, "spells.csv", "municipality", "1",
                              says="encoding"),
    "utf8_declared_latin1": Case(_utf8_declared_latin1, "spells.csv", "municipality", "1",
                                 says="UTF-8"),
    "unknown_encoding": Case(_spec("data", "encoding", "latin-42"), "spec.toml",
                             "data.encoding", says="unknown encoding"),
    "unknown_municipality": Case(_unknown_municipality, "municipal.csv", "municipality", "5",
                                 says="no spells"),
    "missing_municipality": Case(_missing_municipality, "municipal.csv", "municipality",
                                 says="Ærø"),
    "duplicated_municipality": Case(_duplicate_municipality, "municipal.csv", "municipality",
                                    "5", says="more than once"),
    "municipal_missing_value": Case(_municipal_missing_value, "municipal.csv", "unemployment",
                                    "3", says="missing"),
    "municipal_constant": Case(_municipal_constant, "municipal.csv", "unemployment",
                               says="constant"),
    "municipal_collinear": Case(_municipal_collinear, "municipal.csv", "unemployment_pct",
                                says="collinear"),
    "municipal_column_missing": Case(_municipal_column_missing, "municipal.csv", "tax_base",
                                     says="missing"),
    "municipal_table_not_found": Case(_spec("data", "municipal_table", "kommuner.csv"),
                                      "kommuner.csv", says="not found"),
    "spec_unknown_key": Case(_spec("data", "exit", "stop"), "spec.toml", "data.exit",
                             says="unknown spec key"),
    "spec_unknown_section": Case(_spec("priors", "sigma", 1.0), "spec.toml", "[priors]",
                                 says="unknown spec section"),
    "spec_categorical_not_individual": Case(
        _spec("covariates", "categorical", ["origin", "region"]), "spec.toml",
        "covariates.categorical"),
    "spec_bad_time_unit": Case(_spec("data", "time_unit", "fortnights"), "spec.toml",
                               "data.time_unit"),
    "spec_not_toml": Case(_raw("spec.toml", b"[data\ngroup = municipality\n"), "spec.toml",
                          says="TOML"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exits_2_with_one_line(name, tmp_path, capsys):
    case = CASES[name]
    inputs = Inputs()
    case.break_it(inputs)
    data = inputs.write(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    out = tmp_path / "fit"
    code = run(["fit", str(data), "--spec", str(tmp_path / "spec.toml"), "--out", str(out),
                "--draws", "10", "--tune", "10", "--chains", "1", "--quiet"])
    captured = capsys.readouterr()
    err = captured.err.strip()
    print(f"{name}: {err}")  # the bad-input matrix, shown with pytest -s
    assert code == 2, err
    assert "\n" not in err
    assert "Traceback" not in captured.err + captured.out
    assert err.startswith("munirank: error: ")
    assert case.file in err
    if case.column is not None:
        assert f"column {case.column!r}" in err
    if case.rows is not None:
        assert f"rows {case.rows}" in err
    assert case.says.lower() in err.lower()
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_min_cell_below_zero_is_bad_usage(tmp_path, capsys):
    data = Inputs().write(tmp_path)
    code = run(["fit", str(data), "--spec", str(tmp_path / "spec.toml"),
                "--out", str(tmp_path / "fit"), "--min-cell", "-1"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "disclosure.min_cell" in err and "spec.toml" in err
    assert not (tmp_path / "fit").exists()


# --- the same data in every supported format and encoding --------------------------------

FIXTURES = Path(__file__).parents[1] / "data"


def _load(folder: Path, write: Callable[[pd.DataFrame, Path], Path] | None = None,
          filename: str = "spells.csv", **data_spec: str):
    """Write the base inputs to ``folder``, then the spells with ``write``; load them."""
    from munirank.input.episodes import load_episodes
    from munirank.input.spec import load_spec

    inputs = Inputs(encoding=data_spec.get("encoding", "utf-8"))  # municipal.csv too
    inputs.spec["data"].update(data_spec)
    data = inputs.write(folder)
    if write is not None:
        data = write(base_spells(), folder / filename)
    return load_episodes(data, load_spec(folder / "spec.toml"))


@pytest.fixture
def csv_episodes(tmp_path):
    (tmp_path / "csv").mkdir()
    return _load(tmp_path / "csv")


def _write_dta(df: pd.DataFrame, path: Path) -> Path:
    import pyreadstat

    pyreadstat.write_dta(df, str(path))
    return path


def _write_xpt(df: pd.DataFrame, path: Path) -> Path:
    import pyreadstat

    pyreadstat.write_xport(df, str(path))
    return path


def _write_parquet(df: pd.DataFrame, path: Path) -> Path:
    df.set_index("person_id").to_parquet(path)  # a stored index must not shift the rows
    return path


def _write_latin1_csv(df: pd.DataFrame, path: Path) -> Path:
    path.write_bytes(df.to_csv(index=False).encode("latin-1"))
    return path


def _write_bom_csv(df: pd.DataFrame, path: Path) -> Path:
    first = ["municipality", *[c for c in df.columns if c != "municipality"]]  # BOM + needed
    path.write_bytes(df[first].to_csv(index=False).encode("utf-8-sig"))
    return path


def _write_stata114(df: pd.DataFrame, path: Path) -> Path:
    df.to_stata(path, version=114, write_index=False)  # old Stata: Windows-1252 text
    return path


FORMATS = {
    "sas7bdat": (lambda df, p: FIXTURES / "base_spells.sas7bdat", "base_spells.sas7bdat", {}),
    "stata": (_write_dta, "spells.dta", {}),
    "stata114_latin1": (_write_stata114, "spells.dta", {}),
    "stata114_declared": (_write_stata114, "spells.dta", {"encoding": "latin-1"}),
    "sas_transport": (_write_xpt, "spells.xpt", {}),
    "parquet": (_write_parquet, "spells.parquet", {}),
    "csv_latin1_declared": (_write_latin1_csv, "spells.csv", {"encoding": "latin-1"}),
    "csv_cp1252_declared": (_write_latin1_csv, "spells.csv", {"encoding": "cp1252"}),
    "csv_utf8_bom": (_write_bom_csv, "spells.csv", {}),
}


@pytest.mark.parametrize("name", list(FORMATS))
def test_every_format_gives_the_same_episodes(name, tmp_path, csv_episodes):
    write, filename, data_spec = FORMATS[name]
    (tmp_path / "in").mkdir()
    episodes = _load(tmp_path / "in", write, filename, **data_spec)
    assert episodes.attrs["source"].endswith(filename)
    assert list(episodes["municipality"].values) == sorted(NAMES)
    for var in ("entry", "exit", "event", "x", "z", "n_spells", "n_events"):
        np.testing.assert_array_equal(episodes[var].values, csv_episodes[var].values)
    assert list(episodes["covariate"].values) == list(csv_episodes["covariate"].values)


def test_numeric_codes_in_stata_match_text_codes_in_csv(tmp_path):
    """Stata stores 101 as 101.0; the municipal CSV says '101': the same municipality."""
    codes = {name: code for name, code in zip(NAMES, (101, 147, 1902, 492), strict=True)}
    spells = base_spells().assign(municipality=lambda d: d["municipality"].map(codes))
    inputs = Inputs(municipal=base_municipal().assign(municipality=list(codes.values())))
    inputs.write(tmp_path)
    data = _write_dta(spells, tmp_path / "spells.dta")
    from munirank.input.episodes import load_episodes
    from munirank.input.spec import load_spec

    episodes = load_episodes(data, load_spec(tmp_path / "spec.toml"))
    assert list(episodes["municipality"].values) == ["101", "147", "1902", "492"]


@pytest.mark.parametrize("suffix", [".sas7bdat", ".dta", ".xpt"])
def test_bad_input_in_sas_and_stata_files_is_reported_the_same(suffix, tmp_path, capsys):
    """Same validation whatever the format: a negative time in row 7 of a binary file."""
    import shutil

    inputs = Inputs()
    inputs.write(tmp_path)
    data = tmp_path / f"spells{suffix}"
    if suffix == ".sas7bdat":
        shutil.copy(FIXTURES / "base_spells.sas7bdat", data)
        inputs.spec["data"]["time"] = "exit"  # the fixture has 'stop': a misnamed column
        inputs.write(tmp_path)
        expect = "column 'exit': required column is missing"
    else:
        bad = base_spells()
        bad.loc[6, "stop"] = -3.0
        (_write_dta if suffix == ".dta" else _write_xpt)(bad, data)
        expect = "column 'stop', rows 7: must be greater than 0"
    out = tmp_path / "fit"
    code = run(["fit", str(data), "--spec", str(tmp_path / "spec.toml"), "--out", str(out)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert "\n" not in err
    assert f"spells{suffix}, {expect}" in err
    assert not out.exists()
