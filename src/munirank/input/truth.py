"""The optional truth file beside a simulated register (``truth.csv``).

``munirank simulate`` writes ``truth.csv`` next to ``spells.csv``; ``compare`` then scores both
methods against it. A user's own simulation may key it by the spec's group column (say
``kommune``) instead of ``municipality``: either works. The file is optional, so a truth file
that cannot be used never stops a comparison: it is skipped with a one-line warning that says
why, and the comparison is written without truth scores.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from munirank.errors import InputError
from munirank.input.read import read_table

LOG = logging.getLogger(__name__)
TRUTH_FILE = "truth.csv"
#: Columns the truth scores need, besides the municipality key.
TRUTH_COLUMNS = ("true_rank", "true_effect_months")


def read_truth(data: str | Path, *, group: str = "municipality",
               municipalities: list[str] | None = None) -> pd.DataFrame | None:
    """``truth.csv`` beside a data file, keyed by ``municipality``; None if absent or unusable.

    Parameters
    ----------
    data : str or Path
        The spell file; the truth file is looked for in its folder.
    group : str
        The spec's group column: the truth may be keyed by it or by ``municipality``.
    municipalities : list of str, optional
        Every municipality of the fit: a truth file that misses one is not used.

    Returns
    -------
    pandas.DataFrame or None
        The truth with a string ``municipality`` column, or None (with a logged warning when
        the file exists but cannot be used).
    """
    path = Path(data).parent / TRUTH_FILE
    if not path.is_file():
        return None
    try:
        return _checked(path, group, municipalities)
    except InputError as err:
        LOG.warning("%s; the comparison is written without truth scores", err)
        return None


def _checked(path: Path, group: str, municipalities: list[str] | None) -> pd.DataFrame:
    keys = tuple(dict.fromkeys((group, "municipality")))
    truth = read_table(path, str_columns=keys)  # any unreadable file: an InputError
    key = next((c for c in keys if c in truth.columns), None)
    if key is None:
        raise InputError(f"has no column {' or '.join(map(repr, keys))} naming the "
                         "municipalities", file=str(path))
    truth = truth.rename(columns={key: "municipality"})
    missing = [c for c in TRUTH_COLUMNS if c not in truth.columns]
    if missing:
        raise InputError(f"has no column {missing[0]!r}", file=str(path))
    if truth["municipality"].duplicated().any():
        rows = (truth.index[truth["municipality"].duplicated()] + 1).tolist()
        raise InputError("names a municipality twice", file=str(path), column=key, rows=rows)
    absent = sorted(set(municipalities or ()) - set(truth["municipality"]))
    if absent:
        raise InputError(f"has no row for {len(absent)} municipalities of the data, e.g. "
                         f"{absent[0]!r}", file=str(path), column=key)
    return truth
