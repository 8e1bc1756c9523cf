"""Split episodes, the municipal table by year and nesting as fit reads them (Danish names)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tomli_w

from munirank.cli import run
from munirank.errors import InputError
from munirank.input.episodes import load_episodes
from munirank.input.spec import load_spec, spec_from_dict, spec_hash, spec_to_dict


def test_pieces_cells_and_nesting_from_danish_registers(panel_dk):
    spec = load_spec(panel_dk / "spec.toml")
    assert (spec.data.episode, spec.data.year, spec.data.parent) == (
        "forloeb", "kalenderaar", "kommune_new")
    ep = load_episodes(panel_dk / "spells.csv", spec)
    spells = pd.read_csv(panel_dk / "spells.csv", dtype={"kommune": str})
    assert ep.sizes["episode"] == len(spells)
    # ranked: the new municipalities; the old ones nest in them
    assert ep["municipality"].to_numpy().tolist() == sorted(set(spells["kommune_new"]))
    assert ep["old_municipality"].to_numpy().tolist() == sorted(set(spells["kommune"]))
    parent = spells.drop_duplicates("kommune").set_index("kommune")["kommune_new"]
    assert (ep["old_parent"].to_numpy() == parent.loc[ep["old_municipality"]].to_numpy()).all()
    # counts are of unsplit episodes
    first = spells.drop_duplicates("forloeb")
    assert int(ep["n_spells"].sum()) == spells["forloeb"].nunique() < len(spells)
    want = first.groupby("kommune_new").size()
    assert (ep["n_spells"].to_numpy() == want.loc[ep["municipality"]].to_numpy()).all()
    assert (ep["n_spells_old"].to_numpy()
            == first.groupby("kommune").size().loc[ep["old_municipality"]].to_numpy()).all()
    assert int(ep["n_events"].sum()) == int(spells["haendelse"].sum())
    # the weights: each piece's share of its episode's time at risk
    length = spells["udgang"] - spells["indgang"]
    share = length / length.groupby(spells["forloeb"]).transform("sum")
    np.testing.assert_allclose(ep["piece_weight"], share, rtol=1e-12)
    # a cell per (municipality, year) present, with its year's covariate
    cells = spells[["kommune", "kalenderaar"]].drop_duplicates()
    assert ep.sizes["cell"] == len(cells)
    table = pd.read_csv(panel_dk / "municipal.csv", dtype={"kommune": str}).set_index(
        ["kommune", "aar"])
    raw = table.loc[list(zip(ep["cell_unit"].to_numpy(), ep["cell_year"].to_numpy(),
                             strict=True)), "ledighed"].to_numpy()
    cell_of = spells.set_index(["kommune", "kalenderaar"]).index
    assert (ep["cell_unit"].to_numpy()[ep["episode_cell"]] == spells["kommune"]).all()
    assert (ep["cell_year"].to_numpy()[ep["episode_cell"]] == cell_of.get_level_values(1)).all()
    # standardised over municipalities, each one's years sharing its weight
    per_muni = pd.Series(raw).groupby(ep["cell_unit"].to_numpy())
    centre = per_muni.mean().mean()
    scale = np.sqrt(((pd.Series(raw) - centre) ** 2).groupby(ep["cell_unit"].to_numpy())
                    .mean().mean())
    assert float(ep["z_centre"][0]) == pytest.approx(centre, rel=1e-12)
    assert float(ep["z_scale"][0]) == pytest.approx(scale, rel=1e-12)
    np.testing.assert_allclose(ep["z_cell"][:, 0], (raw - centre) / scale, rtol=1e-10)


def test_a_table_constant_over_years_gives_the_unsplit_episodes(split_tiny):
    from munirank.input.episodes import build_episodes
    from munirank.input.validate import validate_spells

    unsplit_spec = load_spec(split_tiny / "unsplit.toml")
    spells = pd.read_csv(split_tiny / "spells.csv", dtype={"municipality": str})
    split = load_episodes(split_tiny / "spells.csv", load_spec(split_tiny / "spec.toml"))
    whole = spells.groupby("episode").agg(
        person_id=("person_id", "first"), municipality=("municipality", "first"),
        start=("start", "first"), stop=("stop", "last"), event=("event", "max"),
        male=("male", "first"), age=("age", "first")).reset_index(drop=True)
    municipal = pd.read_csv(unsplit_spec.data.municipal_table, dtype={"municipality": str})
    unsplit = build_episodes(validate_spells(whole, unsplit_spec, file="whole"), unsplit_spec,
                             municipal=municipal)
    assert len(spells) > 2 * len(whole)
    for name in ("x_centre", "x_scale", "z_centre", "z_scale"):
        np.testing.assert_allclose(split[name], unsplit[name], rtol=1e-13, err_msg=name)
    for name in ("n_spells", "n_events"):
        assert (split[name].to_numpy() == unsplit[name].to_numpy()).all(), name
    z_unit = unsplit["z"].sel(municipality=split["cell_unit"].to_numpy()).to_numpy()
    np.testing.assert_allclose(split["z_cell"], z_unit, rtol=1e-12, atol=1e-14)


def _write(folder, spells: pd.DataFrame, spec: dict, municipal: pd.DataFrame | None = None):
    spells.to_csv(folder / "forloeb.csv", index=False)
    if municipal is not None:
        municipal.to_csv(folder / "kommuner.csv", index=False)
    (folder / "spec.toml").write_text(tomli_w.dumps(spec))
    return folder / "forloeb.csv", load_spec(folder / "spec.toml")


def _panel(panel_dk, tmp_path, change=None, municipal_change=None, data=None):
    spells = pd.read_csv(panel_dk / "spells.csv", dtype=str, keep_default_na=False)
    municipal = pd.read_csv(panel_dk / "municipal.csv", dtype=str, keep_default_na=False)
    if change is not None:
        change(spells)
    if municipal_change is not None:
        municipal = municipal_change(municipal)
    spec = spec_to_dict(load_spec(panel_dk / "spec.toml"))
    spec["data"]["municipal_table"] = "kommuner.csv"
    spec["data"] |= data or {}
    for key in [k for k, v in (data or {}).items() if v is None]:
        del spec["data"][key]
    return _write(tmp_path, spells, spec, municipal)


def _set(row: int, column: str, value: str):
    def change(t):
        t.loc[row, column] = value
    return change


def _second_piece(spells: pd.DataFrame) -> int:
    """The first row that is its episode's second piece."""
    return int(np.flatnonzero(spells["forloeb"].duplicated().to_numpy())[0])


def _two_parents(t):
    t.loc[0, "kommune_new"] = "R99"


def _moved_piece(t):
    t.loc[_second_piece(t), "kommune"] = "K40" if t.loc[0, "kommune"] != "K40" else "K39"


def _early_event(t):
    t.loc[_second_piece(t) - 1, "haendelse"] = "1"


BAD = {
    "an old municipality with two new ones": (_two_parents, None, None, "kommune_new",
                                              "rows 1, ", "has 2 new municipalities"),
    "the pieces of an episode in two municipalities": (_moved_piece, None, None, "kommune",
                                                       "rows", "lie in municipalities"),
    "an event on an episode's first piece": (_early_event, None, None, "haendelse", "rows",
                                             "not its episode's last"),
    "a year the table lacks": (None, lambda m: m[m["aar"] != "2003"], None, "aar", "",
                               "no row for municipality and year"),
    "a municipality without episodes in the table": (
        None, lambda m: pd.concat([m, m.iloc[:1].assign(kommune="K99")]), None, "kommune",
        "rows", "has no spells in the data"),
    "a year that is not a whole number": (_set(3, "kalenderaar", "2002.5"), None, None,
                                          "kalenderaar", "rows 4", "calendar year"),
    "a municipal table by year without [data] year": (None, None, {"year": None},
                                                      "data.year", "", "[data] year"),
    "years without [data] episode": (None, None, {"episode": None}, "data.episode", "",
                                     "[data] episode"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_split_or_nested_input_is_one_line_naming_file_column_rows(case, panel_dk,
                                                                        tmp_path):
    change, municipal_change, data, column, rows, words = BAD[case]
    data_path, spec = _panel(panel_dk, tmp_path, change, municipal_change, data)
    with pytest.raises(InputError) as info:
        load_episodes(data_path, spec)
    message = str(info.value)
    assert "\n" not in message and words in message, message
    assert f"column {column!r}" in message and rows in message, message


def test_fit_refuses_bad_nesting_with_exit_2_and_writes_nothing(panel_dk, tmp_path, capsys):
    data_path, _ = _panel(panel_dk, tmp_path, _two_parents)
    out = tmp_path / "fit"
    assert run(["fit", str(data_path), "--spec", str(tmp_path / "spec.toml"), "--out",
                str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "forloeb.csv" in err and "'kommune_new'" in err and "\n" not in err
    assert not out.exists()


def test_nested_rankings_name_the_new_municipalities_before_sampling(panel_dk, tmp_path):
    spec = spec_to_dict(load_spec(panel_dk / "spec.toml"))
    spec["ranking"]["subset"] = ["K01", "K02"]  # old municipalities: not ranked when nested
    data_path, loaded = _write(tmp_path, pd.read_csv(panel_dk / "spells.csv", dtype=str),
                               spec | {"data": spec["data"] | {
                                   "municipal_table": str(panel_dk / "municipal.csv")}})
    with pytest.raises(InputError, match=r"\[ranking\] subset: unknown municipalities 'K01'"
                       ) as info:
        load_episodes(data_path, loaded)
    assert info.value.column == "kommune_new" and "R01" in str(info.value)


@pytest.mark.parametrize("command", ["check", "compare"])
def test_check_and_compare_refuse_split_or_nested_episodes(command, panel_dk, tmp_path, capsys):
    out = tmp_path / "out"
    assert run([command, str(panel_dk / "spells.csv"), "--spec", str(panel_dk / "spec.toml"),
                "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "only fit does" in err and "data.episode" in err and not out.exists()


def test_spec_keys_of_split_and_nested_episodes():
    plain = spec_from_dict({})
    assert (plain.data.year, plain.data.episode, plain.data.parent) == (None, None, None)
    assert plain.model.priors.sigma_old_sigma == 0.5
    # left out at their defaults: a spec without them hashes as before they existed
    assert "sigma_old_sigma" not in spec_to_dict(plain)["model"]["priors"]
    assert spec_hash(plain) == spec_hash(spec_from_dict({"model": {"priors": {
        "sigma_old_sigma": 0.5}}}))
    assert spec_to_dict(spec_from_dict({"model": {"priors": {"sigma_old_sigma": 0.2}}}))[
        "model"]["priors"]["sigma_old_sigma"] == 0.2
    with pytest.raises(InputError, match="data.parent"):
        spec_from_dict({"data": {"group": "kommune", "parent": "kommune"}})
    with pytest.raises(InputError, match="need method"):
        spec_from_dict({"data": {"parent": "kommune_new"}, "sampling": {"method": "laplace"}})
