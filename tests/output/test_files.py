"""Writing per-row tables: full precision, fast, and correct CSV whatever the text holds."""

import numpy as np
import pandas as pd

from munirank.output.files import write_rows_csv


def test_rows_are_written_at_full_precision_and_quoted_only_when_needed(tmp_path):
    x = np.random.default_rng(1).random(1000) * 1000
    table = pd.DataFrame({"pnr": np.arange(1000), "kommune": "A", "udgang": x,
                          "exit_reason": pd.Categorical(["move"] * 1000)})
    write_rows_csv(table, tmp_path / "a.csv")
    text = (tmp_path / "a.csv").read_text()
    assert text.startswith("pnr,kommune,udgang,exit_reason\n0,A,") and '"' not in text
    back = pd.read_csv(tmp_path / "a.csv", float_precision="round_trip")
    assert (back["udgang"].to_numpy() == x).all()
    table.loc[3, "kommune"] = 'B, "nord"'
    write_rows_csv(table, tmp_path / "b.csv")
    assert pd.read_csv(tmp_path / "b.csv")["kommune"][3] == 'B, "nord"'
    mixed = table.assign(kommune=[1, "B"] * 500)  # pyarrow refuses: pandas writes it
    write_rows_csv(mixed, tmp_path / "c.csv")
    assert pd.read_csv(tmp_path / "c.csv", dtype={"kommune": str})["kommune"][:2].tolist() == [
        "1", "B"]
