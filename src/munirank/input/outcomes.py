"""Competing outcomes (``[data] outcome``): the outcome each event reached, checked.

The column names the outcome of every event row (``event = 1``) and is blank on censored
rows. The outcomes' labels, in the order of every output, are ``[data] outcomes`` when given
(each listed label must have events and every event's label must be listed), else the labels
found, most events first (ties by label). Two to :data:`munirank.input.spec.MAX_OUTCOMES`
outcomes. Combining outcomes with split episodes, calendar-year cells, nesting or periods is
refused (:func:`check_outcome_keys`): those models have one hazard.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from munirank.errors import InputError
from munirank.input.spec import MAX_OUTCOMES, Spec

_MAX_ROWS = 5


def _rows(mask: np.ndarray) -> list[int]:
    return [int(i) + 1 for i in np.flatnonzero(mask)[:_MAX_ROWS + 1]]


def check_outcome_keys(spec: Spec, *, file: str | None = None) -> None:
    """Raise if ``[data] outcome`` is combined with keys whose models have a single hazard.

    ``file``: the spec file the message names (``check_spec`` passes it).
    """
    d = spec.data
    if d.outcome is None:
        return
    for key in ("episode", "year", "parent", "municipal_year", "period"):
        if getattr(d, key, None) is not None:
            raise InputError(f"competing outcomes ([data] outcome) cannot be combined with "
                             f"[data] {key} yet: fit them separately", file=file,
                             column=f"data.{key}")
    if d.outcome in (d.group, d.time, d.event, d.entry):
        raise InputError("must name a column of its own (the outcome of each event)",
                         file=file, column="data.outcome")


def blank(values: pd.Series) -> np.ndarray:
    """Where an outcome cell is empty (missing, or blank text)."""
    missing = values.isna().to_numpy()
    text = values.astype(str).str.strip().to_numpy()
    return missing | (text == "")


def outcome_labels(values: pd.Series, event: np.ndarray, spec: Spec, *,
                   file: str) -> tuple[np.ndarray, list[str]]:
    """Each row's outcome code (-1 = censored) and the outcomes' labels in output order.

    Parameters
    ----------
    values : pandas.Series
        The ``[data] outcome`` column as read.
    event : numpy.ndarray
        The event indicator (0/1) of each row, validated.
    spec : Spec
        ``[data] outcome`` and ``outcomes``.
    file : str
        The data file, for messages.

    Returns
    -------
    codes : numpy.ndarray
        int8 per row: the index of its outcome in ``labels``, -1 on censored rows.
    labels : list of str

    Raises
    ------
    InputError
        An outcome on a censored row, an event without an outcome, fewer than two or more than
        five outcomes, a listed outcome with no events, or an event's outcome not listed.
    """
    column = str(spec.data.outcome)
    empty = blank(values)
    is_event = np.asarray(event) == 1
    if (~empty & ~is_event).any():
        raise InputError("an outcome is given for a censored row (event = 0): leave it blank",
                         file=file, column=column, rows=_rows(~empty & ~is_event))
    if (empty & is_event).any():
        raise InputError("an event without an outcome: name the outcome it reached",
                         file=file, column=column, rows=_rows(empty & is_event))
    text = pd.Series(np.where(empty, "", values.astype(str).str.strip()), index=values.index)
    counts = text[is_event].value_counts()
    listed = list(dict.fromkeys(spec.data.outcomes))
    if listed:
        unknown = ~text.isin(listed) & is_event
        if unknown.any():
            raise InputError(f"outcome {text[unknown].iloc[0]!r} is not in [data] outcomes "
                             f"{listed}", file=file, column=column, rows=_rows(unknown.to_numpy()))
        none = [label for label in listed if counts.get(label, 0) == 0]
        if none:
            raise InputError(f"outcome {none[0]!r} (listed in [data] outcomes) has no events: "
                             "drop it from the list", file=file, column=column)
        labels = listed
    else:
        order = sorted(counts.index, key=lambda label: (-int(counts[label]), str(label)))
        labels = [str(label) for label in order]
    if len(labels) > MAX_OUTCOMES:
        raise InputError(f"{len(labels)} different outcomes ({labels[:MAX_OUTCOMES + 1]}...): "
                         f"at most {MAX_OUTCOMES} competing outcomes; merge some", file=file,
                         column=column)
    if len(labels) < 2:
        raise InputError(f"only one outcome ({labels}): competing outcomes need at least two; "
                         "drop [data] outcome for the single-outcome model", file=file,
                         column=column)
    codes = pd.Index(labels).get_indexer(text)
    return np.where(is_event, codes, -1).astype(np.int8), labels
