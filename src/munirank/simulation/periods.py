r"""Registers measured in several periods, with known correlated truth (``dk-two-periods``).

Each period is a register of the preset (:func:`munirank.simulation.register.simulate_register`,
its own persons and episodes, ``scale`` of the preset's size) with the same municipalities
and municipal table, and true effects

.. math::

    u_{m,p} = s\,(\sqrt{\rho}\, a_m + \sqrt{1 - \rho}\, e_{m,p}), \qquad a, e \sim N(0, 1),

so each period's effects have SD s (``effect_sd``) and correlate :math:`\rho`
(``period_rho``) between periods: the ``shared`` structure of :mod:`munirank.model.periods`.
The last ``absent_first`` municipalities have no episodes in the first period. truth.csv has
one row per municipality and period (``period`` column; the effect in months over the
period's own episodes, the rank within the period); truth_changes.csv one per municipality
in both of two consecutive periods: the true change, whether it improved, whether its rank
rose by 10 or more, whether it is in the top (bottom) k of both.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tomli_w

from munirank.errors import InputError
from munirank.simulation.presets import municipality_counts, preset
from munirank.simulation.register import simulate_register, spec_for

PERIOD_COLUMN = "period"


def true_effects(n: int, n_period: int, sd: float, rho: float,
                 rng: np.random.Generator) -> np.ndarray:
    """(municipality, period) effects with SD ``sd`` and correlation ``rho`` between periods."""
    shared = rng.standard_normal((n, 1))
    own = rng.standard_normal((n, n_period))
    return sd * (np.sqrt(rho) * shared + np.sqrt(1.0 - rho) * own)


def simulate_periods(name: str, seed: int, **overrides: Any) -> dict[str, pd.DataFrame]:
    """Simulate a register measured in the preset's periods (module docstring).

    Returns
    -------
    dict of pandas.DataFrame
        ``spells`` (with ``period``), ``municipal``, ``truth`` (per municipality and period)
        and ``truth_changes``.
    """
    p = replace(preset(name), **overrides)
    if len(p.periods) < 2:
        raise InputError(f"preset {name!r} has no periods", option="--preset")
    rng = np.random.default_rng(seed)
    names = municipality_counts(p, np.random.default_rng(seed)).index.tolist()
    u = true_effects(len(names), len(p.periods), p.effect_sd, p.period_rho, rng)
    absent = set(names[len(names) - p.absent_first:]) if p.absent_first else set()
    one = {"scale": p.scale, **{k: v for k, v in overrides.items() if k in ("effect_dist",
                                                                         "baseline")}}
    spells, truth, municipal, offset = [], [], None, 0
    for j, period in enumerate(p.periods):
        tables = simulate_register(_base(name), seed * 100 + j + 1, effects=u[:, j],
                                   municipal=municipal, **one)
        if municipal is None:
            municipal = tables["municipal"].set_index("municipality")
        sp, tr = tables["spells"], tables["truth"]
        if j == 0 and absent:
            sp = sp[~sp["municipality"].isin(absent)]
            tr = _reranked(tr[~tr["municipality"].isin(absent)], p.top_k)
        sp = sp.assign(person_id=sp["person_id"] + offset, period=period)
        offset = int(sp["person_id"].max())
        spells.append(sp)
        truth.append(tr.assign(period=period))
    truth_all = pd.concat(truth, ignore_index=True)
    assert municipal is not None  # the first period's
    return {"spells": pd.concat(spells, ignore_index=True),
            "municipal": municipal.reset_index(), "truth": _period_first(truth_all),
            "truth_changes": true_changes(truth_all, p.periods, p.top_k)}


def _base(name: str) -> str:
    """The one-period preset each period is drawn from."""
    return {"dk-two-periods": "dk-1999-2005"}.get(name, name)


def _period_first(table: pd.DataFrame) -> pd.DataFrame:
    first = ["municipality", PERIOD_COLUMN]
    return table[first + [c for c in table.columns if c not in first]]


def _reranked(truth: pd.DataFrame, k: int) -> pd.DataFrame:
    """Ranks and top/bottom flags among the municipalities left."""
    rank = truth["true_effect_months"].rank(method="first").astype(int)
    return truth.assign(true_rank=rank, **{f"true_top{k}": rank <= k,
                                           f"true_bottom{k}": rank > len(truth) - k})


def true_changes(truth: pd.DataFrame, periods: tuple[str, ...], k: int) -> pd.DataFrame:
    """The true counterparts of changes.csv, per consecutive pair of periods."""
    rows = []
    for a, b in zip(periods[:-1], periods[1:], strict=True):
        ta = truth[truth[PERIOD_COLUMN] == a].set_index("municipality")
        tb = truth[truth[PERIOD_COLUMN] == b].set_index("municipality")
        common = ta.index.intersection(tb.index)
        ta, tb = ta.loc[common], tb.loc[common]
        change = tb["true_effect_months"] - ta["true_effect_months"]
        rose = ta["true_rank"] - tb["true_rank"]
        rows.append(pd.DataFrame({
            "municipality": common, "period_from": a, "period_to": b,
            "true_change_months": change.to_numpy(), "true_improved": (change < 0).to_numpy(),
            "true_rank_change": rose.to_numpy(), "true_rank_rose10": (rose >= 10).to_numpy(),
            f"true_top{k}_both": (ta[f"true_top{k}"] & tb[f"true_top{k}"]).to_numpy(),
            f"true_bottom{k}_both": (ta[f"true_bottom{k}"] & tb[f"true_bottom{k}"]).to_numpy(),
        }))
    return pd.concat(rows, ignore_index=True)


def write_periods(name: str, seed: int, out: str | Path, *, register_form: bool = False,
                  **overrides: Any) -> Path:
    """Write a register measured in periods: spells.csv, truth.csv and the rest (module doc)."""
    if register_form:
        raise InputError(f"preset {name!r} has no register form (persons and residence "
                         "histories) yet", option="--register-form")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tables = simulate_periods(name, seed, **overrides)
    files = {"spells": "spells.csv", "municipal": "municipal.csv", "truth": "truth.csv",
             "truth_changes": "truth_changes.csv"}
    for key, fname in files.items():
        tables[key].to_csv(out / fname, index=False)
    spec = spec_for(replace(preset(name), **overrides), files)
    spec["data"]["period"] = PERIOD_COLUMN
    (out / "spec.toml").write_text(tomli_w.dumps(spec))
    return out
