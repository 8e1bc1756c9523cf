"""The report's competing-outcomes section: each outcome's effect and rank side by side.

Read from the fit folder's ``outcomes.csv`` and ``outcome_correlations.csv`` (written with
``[data] outcome``); municipality-level numbers only, small counts as the tables blanked them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd


def outcome_context(folder: Path, *, top_k: int) -> dict[str, Any] | None:
    """Labels, one row per municipality (each outcome's numbers side by side), correlations.

    None when the folder has no outcomes.csv (a single-outcome fit).
    """
    path = Path(folder) / "outcomes.csv"
    if not path.is_file():
        return None
    table = pd.read_csv(path, dtype={"municipality": str})
    labels = list(dict.fromkeys(table["outcome"]))
    combined = pd.read_csv(Path(folder) / "municipalities.csv", dtype={"municipality": str})
    by = table.set_index(["municipality", "outcome"])
    rows = []
    for _, r in combined.iterrows():
        cells = []
        for label in labels:
            o = by.loc[(r["municipality"], label)]
            cells.append({"effect": o["effect_months_mean"], "lo": o["effect_months_lo"],
                          "hi": o["effect_months_hi"], "rank": o["rank_mean"],
                          "p_top": o[f"p_top{top_k}"]})
        rows.append({"municipality": r["municipality"], "effect": r["effect_months_mean"],
                     "rank": r["rank_mean"], "outcomes": cells})
    corr_path = Path(folder) / "outcome_correlations.csv"
    correlations = []
    if corr_path.is_file():
        corr = pd.read_csv(corr_path)
        for _, c in corr[corr["parameter"] == "rho"].iterrows():
            a, b = str(c["term"]).split("~", 1)
            correlations.append(
                f"Correlation of the municipality effects on {a} and on {b}: "
                f"{c['value_mean']:.2f} ({c['value_lo']:.2f} to {c['value_hi']:.2f}); "
                f"P(positive) = {c['p_positive']:.2f}.")
    return {"labels": labels, "rows": rows, "correlations": correlations}
