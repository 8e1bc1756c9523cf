"""Hand-made register histories with Danish register column names, and their episodes.

Eleven persons, arrival 2001-01-01 unless said; day numbers since arrival in brackets. End of
data 2001-12-01 [334] unless said; follow-up limit 365 days. Episodes are in days.
"""

from __future__ import annotations

import pandas as pd

from munirank.input.spec import Spec, spec_from_dict

REGISTERS = {"id": "pnr", "arrival": "indrejsedato", "event_date": "selvforsoerget",
             "end_dates": ["udvandret", "slutdato"], "municipality": "kommune",
             "from_date": "fra", "to_date": "til"}
DATA = {"group": "kommune", "entry": "indgang", "time": "udgang", "event": "haendelse",
        "time_unit": "days"}
DAYS_PER_MONTH = 365.25 / 12
EPISODE = ["pnr", "kommune", "indgang", "udgang", "haendelse", "exit_reason"]


def spec(data: dict | None = None, model: dict | None = None, **registers) -> Spec:
    """The histories' spec: [data] names in Danish, follow-up limit 365 days."""
    values = {"data": DATA | (data or {}), "covariates": model or {},
              "registers": REGISTERS | {"follow_up_months": 365 / DAYS_PER_MONTH} | registers}
    return spec_from_dict(values)


def persons_table(rows: list[tuple]) -> pd.DataFrame:
    """(pnr, arrival, event, emigration, end of data, male) as ISO text, blank = None."""
    return pd.DataFrame(rows, columns=["pnr", "indrejsedato", "selvforsoerget", "udvandret",
                                       "slutdato", "mand"])


def residence_table(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["pnr", "kommune", "fra", "til"])


PERSONS = persons_table([
    ("mover", "2001-01-01", "2001-07-20", None, "2001-12-01", 1),        # event [200] in B
    ("movday", "2001-01-01", "2001-04-11", None, "2001-12-01", 0),       # event on move [100]
    ("gap", "2001-01-01", None, None, "2001-12-01", 1),
    ("before", "2001-03-01", None, None, "2001-12-01", 0),               # arrival 2001-03-01
    ("limit", "2001-01-01", "2002-06-01", None, "2003-01-01", 1),        # event [516] > 365
    ("emigr", "2001-01-01", "2001-12-01", "2001-08-30", "2001-12-01", 0),  # emigrates [241]
    ("nores", "2001-01-01", None, None, "2001-12-01", 1),                # no residence rows
    ("arrday", "2001-01-01", "2001-01-01", None, "2001-12-01", 0),       # event on arrival
    ("stay", "2001-01-01", None, None, "2001-12-01", 1),                 # two rows, one stay
    ("late", "2001-01-01", None, "2001-03-01", "2001-12-01", 0),         # lives there after
    ("ingap", "2001-01-01", "2001-03-01", None, "2001-12-01", 1),        # event [59] in a gap
])
RESIDENCE = residence_table([
    ("mover", "A", "2001-01-01", "2001-04-11"), ("mover", "B", "2001-04-11", None),
    ("movday", "A", "2000-06-01", "2001-04-11"), ("movday", "B", "2001-04-11", None),
    ("gap", "A", "2001-01-01", "2001-02-20"), ("gap", "B", "2001-05-01", "2001-10-28"),
    ("before", "C", "1999-01-01", None),
    ("limit", "A", "2001-01-01", None),
    ("emigr", "B", "2001-01-01", None),
    ("arrday", "A", "2001-01-01", None),
    ("stay", "C", "2001-01-01", "2001-05-01"), ("stay", "C", "2001-05-01", "2001-09-01"),
    ("late", "A", "2001-04-01", None),
    ("ingap", "A", "2001-01-01", "2001-02-01"), ("ingap", "B", "2001-04-01", None),
    ("nobody", "A", "2001-01-01", None),
])
EXPECTED = pd.DataFrame([
    ("mover", "A", 0, 100, 0, "move"), ("mover", "B", 100, 200, 1, "event"),
    ("movday", "A", 0, 100, 1, "event"),
    ("gap", "A", 0, 50, 0, "gap"), ("gap", "B", 120, 300, 0, "residence_ends"),
    ("before", "C", 0, 275, 0, "end:slutdato"),
    ("limit", "A", 0, 365, 0, "follow_up"),
    ("emigr", "B", 0, 241, 0, "end:udvandret"),
    ("stay", "C", 0, 243, 0, "residence_ends"),   # left C before the end
    ("ingap", "A", 0, 31, 0, "residence_ends"),  # next period after the exit
], columns=EPISODE).astype({"indgang": float, "udgang": float})
