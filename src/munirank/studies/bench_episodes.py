"""The ``episodes`` case of ``munirank bench``: register extracts of 1,000,000 persons.

:func:`make_registers` draws a person table and a residence history with Poisson(1.6) moves
per person (arrivals 1999-2006, end of data 2008-01-01, 10 % emigrate, 1 % die, events after
an exponential time with mean 2.5 years, moves on uniform days of the follow-up among 271
municipalities, 30 % with residence before arrival, about 5 % of moves after a gap, 40 % of
last periods open), written as CSV with ISO text dates (the slowest input: every date is
parsed). The case times ``munirank episodes`` on them, reading and writing included, in a
fresh process; the target is 30 s on 2 cores.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import tomli_w

DAY = 86_400 * 10**9
TARGET_SECONDS = 30.0
REGISTERS = {"id": "pnr", "arrival": "indrejsedato", "event_date": "selvforsoerget",
             "end_dates": ["udvandret", "doed", "slutdato"], "municipality": "kommune",
             "from_date": "fra", "to_date": "til"}


def _ns(text: str) -> int:
    return pd.Timestamp(text).as_unit("ns").value


def make_registers(n: int, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """A person table and a residence history of ``n`` persons (module docstring)."""
    arrival = _ns("1999-01-01") + rng.integers(0, 8 * 365, n) * DAY
    end = _ns("2008-01-01")
    span = (end - arrival) // DAY
    nat = np.iinfo(np.int64).min
    emigration = np.where(rng.random(n) < 0.10, arrival + rng.integers(1, span) * DAY, nat)
    death = np.where(rng.random(n) < 0.01, arrival + rng.integers(1, span) * DAY, nat)
    event = arrival + np.round(rng.exponential(2.5 * 365.25, n)).astype(np.int64) * DAY
    event = np.where(event < end + 365 * DAY, event, nat)
    moves = rng.poisson(1.6, n)
    person = np.repeat(np.arange(n), moves)
    move = arrival[person] + (rng.random(len(person)) * span[person]).astype(np.int64) * DAY
    move = move[np.lexsort((move, person))]
    first = np.cumsum(moves + 1) - (moves + 1)
    is_first = np.zeros(int(np.sum(moves + 1)), bool)
    is_first[first] = True
    fra = np.empty(len(is_first), np.int64)
    fra[is_first] = arrival - np.where(rng.random(n) < 0.3, rng.integers(1, 730, n), 0) * DAY
    fra[~is_first] = move
    til = np.append(fra[1:], 0)
    last = np.append(first[1:] - 1, len(fra) - 1)
    til[last] = np.where(rng.random(n) < 0.4, nat, end + 30 * DAY)
    gap = np.flatnonzero(~is_first & (rng.random(len(fra)) < 0.05 / 1.6)) - 1
    til[gap] = np.maximum(fra[gap], til[gap] - rng.integers(1, 60, len(gap)) * DAY)
    code = rng.integers(0, 271, len(fra))
    same = np.append(False, (code[1:] == code[:-1]) & ~is_first[1:])
    code[same] = (code[same] + 1 + rng.integers(0, 270, same.sum())) % 271
    ids = np.arange(n) + 1_000_000
    persons = pd.DataFrame({
        "pnr": ids, "indrejsedato": _dates(arrival), "selvforsoerget": _dates(event),
        "udvandret": _dates(emigration), "doed": _dates(death),
        "slutdato": _dates(np.full(n, end)), "mand": rng.integers(0, 2, n),
        "alder": rng.integers(18, 65, n)})
    residence = pd.DataFrame({"pnr": ids[np.repeat(np.arange(n), moves + 1)],
                              "kommune": 101 + 3 * code, "fra": _dates(fra), "til": _dates(til)})
    return persons, residence.iloc[rng.permutation(len(residence))].reset_index(drop=True)


def _dates(ns: np.ndarray) -> pd.Series:
    return pd.Series(np.asarray(ns, np.int64).view("datetime64[ns]"))


def write_registers(folder: Path, n: int, seed: int) -> Path:
    """persons.csv, residence.csv and spec.toml of :func:`make_registers` (kept if there)."""
    if (folder / "spec.toml").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    persons, residence = make_registers(n, np.random.default_rng(seed))
    persons.to_csv(folder / "persons.csv", index=False, date_format="%Y-%m-%d")
    residence.to_csv(folder / "residence.csv", index=False, date_format="%Y-%m-%d")
    spec = {"data": {"group": "kommune", "time_unit": "weeks", "entry": "start"},
            "covariates": {"individual": ["mand", "alder"]},
            "registers": REGISTERS | {"follow_up_months": 48.0}}
    (folder / "spec.toml").write_text(tomli_w.dumps(spec))
    return folder


def run_case(data: Path, out: Path) -> dict[str, Any]:
    """``munirank episodes`` on the registers in ``data``, timed (run in a fresh process)."""
    from munirank.input import extracts

    t0 = time.perf_counter()
    result = extracts.episodes(data / "persons.csv", data / "residence.csv",
                               spec=data / "spec.toml", out=out, overwrite=True)
    wall = time.perf_counter() - t0
    s = result.summary
    return {"wall_seconds": wall, "build_seconds": result.seconds["build"],
            "write_seconds": result.seconds["write"], "persons": s["persons"]["in"],
            "residence_rows": s["residence_rows"]["in"], "n_episodes": s["episodes"]["out"],
            "events": s["episodes"]["events"], "target_seconds": TARGET_SECONDS}
