"""Measurement periods as fit reads them (``[data] period``; Danish names, period ``maaling``)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tomli_w

from munirank.cli import run
from munirank.errors import InputError
from munirank.input.episodes import load_episodes
from munirank.input.periods import ordered_periods
from munirank.input.spec import load_spec, spec_from_dict, spec_hash, spec_to_dict


def test_period_cells_from_a_danish_register(periods_dir):
    spec = load_spec(periods_dir / "spec.toml")
    ep = load_episodes(periods_dir / "spells.csv", spec)
    spells = pd.read_csv(periods_dir / "spells.csv", dtype={"kommune": str})
    assert ep["period"].to_numpy().tolist() == ["2007", "2009"]
    # a cell per (municipality, period) present: M20 is in 2009 only, and kept
    cells = pd.DataFrame({"m": ep["municipality"].to_numpy()[ep["cell_municipality"]],
                          "p": ep["period"].to_numpy()[ep["cell_period"]]})
    assert len(cells) == 2 * 20 - 1 and "M20" in ep["municipality"].to_numpy()
    assert cells[cells["m"] == "M20"]["p"].tolist() == ["2009"]
    want = spells.groupby(["kommune", "maaling"]).size()
    got = pd.Series(ep["n_spells_cell"].to_numpy(),
                    index=pd.MultiIndex.from_arrays([cells["m"], cells["p"].astype(int)]))
    assert (got.sort_index().to_numpy() == want.sort_index().to_numpy()).all()
    assert int(ep["n_events_cell"].sum()) == int(spells["haendelse"].sum())
    # each row's cell is its municipality's in its period
    row_cell = ep["episode_period_cell"].to_numpy()
    assert (cells["m"].to_numpy()[row_cell] == spells["kommune"].to_numpy()).all()
    assert (cells["p"].to_numpy()[row_cell] == spells["maaling"].astype(str).to_numpy()).all()
    # municipality totals as without periods
    assert int(ep["n_spells"].sum()) == len(spells)


def test_periods_are_ordered_by_number_when_all_are_numbers():
    assert ordered_periods(pd.Series(["10", "9", "10", "11"])) == ["9", "10", "11"]
    assert ordered_periods(pd.Series(["2003-2005", "1999-2002"])) == ["1999-2002", "2003-2005"]


def _with(periods_dir, tmp_path, change):
    spells = change(pd.read_csv(periods_dir / "spells.csv", dtype={"kommune": str}))
    spells.to_csv(tmp_path / "maalinger.csv", index=False)
    spec = spec_to_dict(load_spec(periods_dir / "spec.toml"))
    spec["data"]["municipal_table"] = str(periods_dir / "municipal.csv")
    (tmp_path / "spec.toml").write_text(tomli_w.dumps(spec))
    return tmp_path / "maalinger.csv", load_spec(tmp_path / "spec.toml")


def _no_events_in_2009(s):
    return s.assign(haendelse=np.where(s["maaling"] == 2009, 0, s["haendelse"]))


BAD = {
    "a period column with one value": (lambda s: s.assign(maaling=2009), "one value only", ""),
    "more than 20 periods": (lambda s: s.assign(maaling=np.arange(len(s)) % 21),
                             "21 periods, more than 20", ""),
    "a period with no events": (_no_events_in_2009, "period '2009' has no events", "rows "),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_periods_are_one_line_naming_file_column_rows(case, periods_dir, tmp_path):
    change, words, rows = BAD[case]
    data_path, spec = _with(periods_dir, tmp_path, change)
    with pytest.raises(InputError) as info:
        load_episodes(data_path, spec)
    message = str(info.value)
    assert "\n" not in message and words in message, message
    assert "maalinger.csv" in message and "column 'maaling'" in message and rows in message


def test_fit_refuses_bad_periods_with_exit_2_and_writes_nothing(periods_dir, tmp_path, capsys):
    data_path, _ = _with(periods_dir, tmp_path, BAD["a period column with one value"][0])
    out = tmp_path / "fit"
    assert run(["fit", str(data_path), "--spec", str(tmp_path / "spec.toml"), "--out",
                str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "maalinger.csv" in err and "'maaling'" in err and "\n" not in err
    assert not out.exists()


@pytest.mark.parametrize(("data", "model", "sampling", "key"), [
    ({"parent": "ny_kommune"}, {}, {}, "data.parent"),
    ({"episode": "forloeb"}, {}, {}, "data.episode"),
    ({}, {}, {"method": "laplace"}, "sampling.method"),
    ({}, {"group_effect": "student_t"}, {}, "model.group_effect"),
    ({}, {"periods": "random_walk"}, {}, "model.periods"),
    ({"period": "kommune", "group": "kommune"}, {}, {}, "data.period"),
])
def test_period_combinations_not_supported_are_refused_by_key(data, model, sampling, key):
    with pytest.raises(InputError) as info:
        spec_from_dict({"data": {"period": "maaling", **data}, "model": model,
                        "sampling": sampling})
    assert info.value.column == key and "\n" not in str(info.value)


@pytest.mark.parametrize("command", ["check", "compare"])
def test_check_and_compare_refuse_periods(command, periods_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert run([command, str(periods_dir / "spells.csv"), "--spec",
                str(periods_dir / "spec.toml"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "measurement periods" in err and "data.period" in err and not out.exists()


def test_period_keys_leave_a_spec_without_them_hashing_as_before():
    plain = spec_from_dict({})
    assert (plain.data.period, plain.model.periods) == (None, "shared")
    values = spec_to_dict(plain)
    assert "period" not in values["data"] and "periods" not in values["model"]
    assert "sigma_period_sigma" not in values["model"]["priors"]
    assert spec_hash(plain) == spec_hash(spec_from_dict({"model": {
        "periods": "shared", "priors": {"sigma_period_sigma": 0.5}}}))
    ar1 = spec_from_dict({"data": {"period": "maaling"}, "model": {"periods": "ar1"}})
    assert spec_to_dict(ar1)["model"]["periods"] == "ar1"
