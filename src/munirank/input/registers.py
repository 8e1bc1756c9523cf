r"""Episodes from register extracts with dates: a person table and a residence history.

Inputs (column names are the user's, from ``[registers]``)
----------------------------------------------------------
- the *person table*: one row per person with the id, the arrival date (residence permit or
  programme start: time zero), the event date (first self-support or education; blank = no
  event), one or more end-of-observation dates (emigration, death, end of data; blank = not
  ended) and the covariates;
- the *residence history*: one row per period (id, municipality code, from date, to date;
  a blank to date = still living there).

Dates and time in the spec's unit: :mod:`munirank.input.dates`; t(D) = (D - A) / L.

Rules
-----
Follow-up. Person i is followed over (0, X_i] with

    X_i = min(t(E_i), t(C_i), F),   C_i = the earliest end date (and ``end_of_data``)

E_i the event date, F the follow-up limit (``follow_up_months`` in the unit; none by
default; it is not ``[outcome] horizon_months``, the horizon of the effects). The event is
observed iff E_i <= C_i and t(E_i) <= F (ties go to the event; an end on the limit's date is
an end of observation). An event after C_i or after F is not counted.

Residence. A period runs over (from, to]: the person is at risk there after ``from`` up to
and including ``to``, the move-out date, equal to the next period's ``from``
(``to_inclusive = true``: a to date is the last day lived there, and one day is added). Periods
of one person in the same municipality back to back (to = next from) are one. Period k gives
the episode

    start_k = max(t(from_k), 0),   stop_k = min(t(to_k), X_i)

kept if stop_k > start_k: periods before arrival are clipped at 0, a period starting after
arrival has delayed entry, and periods after the exit are dropped.

Event. event_k = 1 iff the event is observed and t(to_k) >= X_i (period k holds the event date
in (from, to]). An event on a move date is counted in the municipality moved *from*: the new
municipality's episode would be (t, t], of zero length. An event in a gap or after the last
period (no residence on that date) is counted nowhere, and follow-up ends there all the same.

Gaps. Between a period's to and the next from the person is at risk nowhere: no episode; the
next period has delayed entry. Overlapping periods are an error.

Exit reasons (``exit_reason``): ``event``; ``end:<column>`` (the end column that ended
observation; ``end:end_of_data`` for ``end_of_data``); ``follow_up`` (the limit); otherwise
the period ended before X_i: ``move`` (the next period starts on its to date), ``gap`` (it
starts later, before X_i) or ``residence_ends`` (no further period before X_i); with
``split_years``, ``year_end`` on every piece but an episode's last, and the pieces carry
``episode``, the number (1, 2, ...) of the episode they come from.

Dropped persons: ``no_time_at_risk`` (X_i = 0: event or end on the arrival date),
``no_residence`` (no residence rows), ``no_residence_in_follow_up`` (rows, none in (0, X_i]).

Crosswalk (:mod:`munirank.input.crosswalk`): residence codes are mapped before periods are
merged, so a stay across a reform is one episode on the new municipalities.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from munirank.errors import InputError
from munirank.input import dates as dt
from munirank.input.crosswalk import Crosswalk, map_codes
from munirank.input.spec import TIME_UNITS_PER_MONTH, Spec
from munirank.input.years import YEAR_END, split_years

FOLLOW_UP = "follow_up"


@dataclass(frozen=True)
class Sources:
    """Names of the input files, for messages."""

    persons: str = "persons"
    residence: str = "residence"


@dataclass(frozen=True)
class RegisterEpisodes:
    """The episode table and what was done to build it (counts before disclosure control)."""

    episodes: pd.DataFrame
    counts: dict = field(default_factory=dict)


@dataclass(frozen=True)
class FollowUp:
    """Per person (in the order of the person table): time zero and the exit X_i."""

    arrival: np.ndarray      # int64 ns
    exit_t: np.ndarray       # X_i in the unit
    exit_kind: np.ndarray    # index into ``labels``
    labels: tuple[str, ...]  # "event", "end:<col>", ..., "follow_up"
    event_seen: np.ndarray   # the event is observed within follow-up
    counts: dict[str, int]


def follow_up(persons: pd.DataFrame, spec: Spec, *, file: str) -> FollowUp:
    """Time zero, exit time and exit kind of every person (rules in the module docstring)."""
    r = spec.registers
    unit = dt.unit_ns(spec.data.time_unit)
    arrival = dt.parse_dates(persons[r.arrival], file=file, column=r.arrival, required=True)
    event = dt.parse_dates(persons[r.event_date], file=file, column=r.event_date,
                           required=False)
    has_event = event != dt.NAT
    early = has_event & (event < arrival)
    if early.any():
        raise InputError(f"event date before the arrival date ({r.arrival!r})", file=file,
                         column=r.event_date, rows=dt.file_rows(early))
    ends, labels = [], []
    for c in r.end_dates:
        d = dt.parse_dates(persons[c], file=file, column=c, required=False)
        early = (d != dt.NAT) & (d < arrival)
        if early.any():
            raise InputError(f"end of observation before the arrival date ({r.arrival!r}): "
                             "give the first end after arrival", file=file, column=c,
                             rows=dt.file_rows(early))
        ends.append(np.where(d == dt.NAT, dt.OPEN, d))
        labels.append(f"end:{c}")
    if r.end_of_data is not None:
        ends.append(np.full(len(persons), _end_of_data(r.end_of_data)))
        labels.append("end:end_of_data")
    stacked = np.column_stack(ends)
    which = stacked.argmin(axis=1)
    end = stacked[np.arange(len(persons)), which]
    if (end == dt.OPEN).any():
        raise InputError("no end of observation (every end date blank): fill them in, or "
                         "give [registers] end_of_data", file=file, column=r.end_dates[0],
                         rows=dt.file_rows(end == dt.OPEN))
    t_end = (end - arrival) / unit
    t_event = np.where(has_event, (event - arrival) / unit, np.inf)
    limit = (np.inf if r.follow_up_months is None
             else r.follow_up_months * TIME_UNITS_PER_MONTH[spec.data.time_unit])
    seen = has_event & (event <= end) & (t_event <= limit)
    exit_t = np.where(seen, t_event, np.minimum(t_end, limit))
    kind = np.where(seen, 0, np.where(t_end <= limit, 1 + which, 1 + len(labels)))
    counts = {"events_after_end_of_observation": int((has_event & (event > end)).sum()),
              "events_after_follow_up": int((has_event & (event <= end)
                                             & (t_event > limit)).sum())}
    return FollowUp(arrival, exit_t, kind, ("event", *labels, FOLLOW_UP), seen, counts)


def _end_of_data(text: str) -> int:
    try:
        return pd.Timestamp(text).as_unit("ns").value
    except ValueError:
        raise InputError(f"not a date: {text!r} (write YYYY-MM-DD)",
                         column="registers.end_of_data") from None


@dataclass(frozen=True)
class Periods:
    """Residence periods after checks and merging, sorted by person and from date."""

    person: np.ndarray       # row of the person table
    code: np.ndarray         # municipality (text), at the reported level
    start_ns: np.ndarray
    stop_ns: np.ndarray      # OPEN for an open period
    next_ns: np.ndarray      # from of the person's next period (OPEN if none)
    newest: np.ndarray | None  # the new municipality, when reported on old ones
    counts: dict[str, int]


def residence_periods(residence: pd.DataFrame, person_ids: pd.Series, spec: Spec, *,
                      sources: Sources, crosswalk: Crosswalk | None = None,
                      known: Sequence[str] | None = None) -> Periods:
    """Checked, sorted and merged residence periods (rules in the module docstring).

    Rows of persons not in the person table are ignored (and counted).
    """
    r, file = spec.registers, sources.residence
    start = dt.parse_dates(residence[r.from_date], file=file, column=r.from_date,
                           required=True)
    stop = dt.parse_dates(residence[r.to_date], file=file, column=r.to_date, required=False)
    if r.to_inclusive:
        stop = np.where(stop == dt.NAT, dt.NAT, stop + dt.NS_PER_DAY)
    stop = np.where(stop == dt.NAT, dt.OPEN, stop)
    if (stop < start).any():
        raise InputError(f"to date before the from date ({r.from_date!r})", file=file,
                         column=r.to_date, rows=dt.file_rows(stop < start))
    pkeys, rkeys = dt.person_keys(person_ids, residence[r.id],
                                  files=(sources.persons, file), column=r.id)
    person = pd.Index(pkeys).get_indexer(rkeys)
    matched = person >= 0
    if not matched.any():
        raise InputError(f"no residence row matches a person id of {sources.persons} (e.g. "
                         f"{rkeys[0]!r} here, {pkeys[0]!r} there)", file=file, column=r.id)
    empty = stop == start
    pos = np.flatnonzero(matched & ~empty)  # file row of each period kept
    pos = pos[np.lexsort((start[pos], person[pos]))]
    p, s, e = person[pos], start[pos], stop[pos]
    c = dt.as_text_codes(residence[r.municipality], file=file, column=r.municipality)[pos]
    newest, successors = None, 0
    if crosswalk is not None:
        c, newest, successors = map_codes(c, s, crosswalk, level=spec.data.crosswalk_level,
                                          file=file, column=r.municipality, positions=pos)
        newest = newest if spec.data.crosswalk_level == "old" else None
    if known is not None:
        unknown = ~pd.Index(pd.unique(c)).isin(list(known))
        if unknown.any():
            bad = np.isin(c, pd.unique(c)[unknown])
            raise InputError(f"unknown municipality code {c[bad][0]!r}: it is not in the "
                             "municipal table (after the crosswalk)", file=file,
                             column=r.municipality, rows=dt.file_rows(bad, pos))
    _check_overlaps(p, s, e, rkeys[pos], pos, r.from_date, file)
    same = np.zeros(len(p), bool)
    same[1:] = (p[1:] == p[:-1]) & (c[1:] == c[:-1]) & (s[1:] == e[:-1])
    begins = np.flatnonzero(~same)
    ends = np.append(begins[1:] - 1, len(p) - 1) if len(p) else begins
    bp = p[begins]
    nxt = np.full(len(begins), dt.OPEN)
    nxt[:-1] = np.where(bp[1:] == bp[:-1], s[begins[1:]], dt.OPEN)
    counts = {"residence_rows_in": len(residence),
              "residence_rows_of_other_persons": int((~matched).sum()),
              "residence_rows_empty": int((matched & empty).sum()),
              "residence_rows_merged": int(len(p) - len(begins)),
              "residence_rows_read_as_successor": successors}
    return Periods(bp, c[begins], s[begins], e[ends], nxt,
                   None if newest is None else newest[begins], counts)


def _check_overlaps(p: np.ndarray, s: np.ndarray, e: np.ndarray, keys: np.ndarray,
                    pos: np.ndarray, column: str, file: str) -> None:
    overlap = np.zeros(len(p), bool)
    overlap[1:] = (p[1:] == p[:-1]) & (s[1:] < e[:-1])
    if overlap.any():
        pair = overlap | np.append(overlap[1:], False)
        first = int(np.argmax(overlap))
        pair[:first - 1] = False  # name the first person's rows
        raise InputError(f"overlapping residence periods of person {keys[first]!r} (a period "
                         "must end before the next one starts; a blank to date is only "
                         "allowed on the last)", file=file, column=column,
                         rows=dt.file_rows(pair & (p == p[first]), pos))


def _clip(per: Periods, fu: FollowUp, unit: float) -> dict:
    """Episodes (start, stop] of each period clipped to (0, X_i], with event and reason."""
    a = fu.arrival[per.person]
    x = fu.exit_t[per.person]
    start = np.maximum((per.start_ns - a) / unit, 0.0)
    to_t = np.where(per.stop_ns == dt.OPEN, np.inf,
                    (np.where(per.stop_ns == dt.OPEN, a, per.stop_ns) - a) / unit)
    stop = np.minimum(to_t, x)
    keep = stop > start
    reaches = to_t >= x
    next_t = np.where(per.next_ns == dt.OPEN, np.inf,
                      (np.where(per.next_ns == dt.OPEN, a, per.next_ns) - a) / unit)
    move = per.next_ns == per.stop_ns
    k = len(fu.labels)
    reason = np.where(reaches, fu.exit_kind[per.person],
                      np.where(move, k, np.where(next_t < x, k + 1, k + 2)))
    seen = fu.event_seen[per.person]
    on_move = reaches & seen & move & (to_t == x)
    return {"person": per.person[keep], "code": per.code[keep], "start": start[keep],
            "stop": stop[keep], "event": (reaches & seen)[keep].astype(np.int8),
            "arrival": a[keep], "newest": None if per.newest is None else per.newest[keep],
            "reason": pd.Categorical.from_codes(
                reason[keep], [*fu.labels, "move", "gap", "residence_ends"]),
            "events_on_move_date": int((on_move & keep).sum()),
            "clipped_at_arrival": int((keep & (per.start_ns < a)).sum())}


def output_columns(spec: Spec) -> dict[str, str]:
    """Role -> column of the episode table ``episodes`` writes (the spec's ``[data]`` names)."""
    d = spec.data
    out = {"id": spec.registers.id, "group": d.group, "entry": d.entry or "start",
           "time": d.time, "event": d.event, "exit_reason": "exit_reason"}
    if d.crosswalk is not None and d.crosswalk_level == "old":
        out["group_new"] = f"{d.group}_new"
    if spec.registers.split_years:
        out["episode"] = "episode"  # the unsplit episode each piece belongs to
        out["year"] = "year"
    return out


def carried_covariates(persons: pd.DataFrame, spec: Spec, file: str) -> list[str]:
    """Person columns carried into the episodes: ``[registers] covariates`` or all others."""
    r = spec.registers
    roles = {r.id, r.arrival, r.event_date, *r.end_dates}
    carried = (list(r.covariates) if r.covariates is not None
               else [str(c) for c in persons.columns if c not in roles])
    dt.require_columns(persons, carried, file, "[registers] covariates")
    missing = [c for c in spec.covariates.individual if c not in carried]
    if missing:
        raise InputError(f"covariate {missing[0]!r} of [covariates] individual is not carried "
                         "into the episodes: add it to [registers] covariates", file=file,
                         column=missing[0])
    taken = set(output_columns(spec).values()) & set(carried)
    if taken:
        raise InputError("a carried covariate has the name of an episode column; rename it or "
                         "leave it out of [registers] covariates", file=file,
                         column=sorted(taken)[0])
    return carried


def register_episodes(persons: pd.DataFrame, residence: pd.DataFrame, spec: Spec, *,
                      crosswalk: Crosswalk | None = None, known: Sequence[str] | None = None,
                      sources: Sources = Sources()) -> RegisterEpisodes:
    """Turn a person table and a residence history into the episode table ``fit`` reads.

    Parameters
    ----------
    persons, residence : pandas.DataFrame
        As read (row ``i`` is data row ``i + 1`` of the file); columns named in the spec's
        ``[registers]``.
    spec : Spec
        ``[registers]`` (columns and rules), ``[data]`` (time unit, output column names,
        crosswalk level) and ``[covariates]`` (which must be carried).
    crosswalk : Crosswalk, optional
        From :func:`munirank.input.crosswalk.read_crosswalk`.
    known : sequence of str, optional
        Municipality codes that exist at the reported level (the municipal table's); other
        codes are an error.
    sources : Sources
        File names for messages.

    Returns
    -------
    RegisterEpisodes
        The episodes (columns :func:`output_columns`, then the covariates; in the order of
        the person table, then by start) and the counts of what was done.

    Raises
    ------
    InputError
        Naming the file, column and first rows (module docstring; duplicated person ids,
        missing required dates, overlapping periods, a to date before the from date, an event
        or end before arrival, unknown municipality codes, dates that do not parse).

    Examples
    --------
    >>> from munirank.input.spec import spec_from_dict
    >>> spec = spec_from_dict({"data": {"time_unit": "days", "entry": "start"},
    ...                        "registers": {"end_dates": ["end"]}})
    >>> persons = pd.DataFrame({"person_id": [1], "arrival": ["2001-01-01"],
    ...                         "event_date": ["2001-03-02"], "end": ["2002-01-01"]})
    >>> residence = pd.DataFrame({"person_id": [1, 1], "municipality": ["A", "B"],
    ...                           "from": ["2000-05-01", "2001-02-01"], "to": ["2001-02-01", ""]})
    >>> register_episodes(persons, residence, spec).episodes[["municipality", "start", "stop",
    ...                                                       "event"]].values.tolist()
    [['A', 0.0, 31.0, 0], ['B', 31.0, 60.0, 1]]
    """
    r = spec.registers
    if not r.end_dates and r.end_of_data is None:
        raise InputError("name at least one end-of-observation column, or give the end of "
                         "the data (YYYY-MM-DD)", column="registers.end_dates")
    dt.require_columns(persons, [r.id, r.arrival, r.event_date, *r.end_dates],
                       sources.persons, "[registers]")
    dt.require_columns(residence, [r.id, r.municipality, r.from_date, r.to_date],
                       sources.residence, "[registers]")
    carried = carried_covariates(persons, spec, sources.persons)
    ids = persons[r.id]
    dup = ids.duplicated(keep=False).to_numpy()
    if dup.any():
        raise InputError("person listed more than once", file=sources.persons, column=r.id,
                         rows=dt.file_rows(dup))
    fu = follow_up(persons, spec, file=sources.persons)
    per = residence_periods(residence, ids, spec, sources=sources, crosswalk=crosswalk,
                            known=known)
    ep = _clip(per, fu, dt.unit_ns(spec.data.time_unit))
    cols = output_columns(spec)
    table = {cols["id"]: ids.to_numpy()[ep["person"]], cols["group"]: ep["code"]}
    if ep["newest"] is not None:  # reported on old municipalities: the new one beside
        table[f"{cols['group']}_new"] = ep["newest"]
    table |= {cols["entry"]: ep["start"], cols["time"]: ep["stop"],
              cols["event"]: ep["event"], "exit_reason": ep["reason"]}
    out = pd.DataFrame(table)
    counts = _counts(out, ep, per, fu, n_persons=len(persons), event=cols["event"])
    person = ep["person"]
    if r.split_years:
        out, rows = split_years(out, ep["arrival"], spec, columns=cols)
        person = person[rows]
        counts["episodes_before_year_split"] = counts["episodes_out"]
        counts["episodes_out"] = len(out)
        if len(out) > len(ep["person"]):  # every piece but an episode's last
            counts["censored"][YEAR_END] = len(out) - len(ep["person"])
    extra = persons[carried].iloc[person].reset_index(drop=True)
    return RegisterEpisodes(pd.concat([out, extra], axis=1), counts)


def _counts(out: pd.DataFrame, ep: dict, per: Periods, fu: FollowUp, *, n_persons: int,
            event: str) -> dict:
    """What :func:`register_episodes` did, as plain numbers (before disclosure control)."""
    with_ep = np.zeros(n_persons, bool)
    with_ep[ep["person"]] = True
    has_rows = np.zeros(n_persons, bool)
    has_rows[per.person] = True
    no_time = fu.exit_t <= 0
    reasons = out["exit_reason"].value_counts()
    events = int(out[event].sum())
    return {
        "persons_in": n_persons, "persons_with_episodes": int(with_ep.sum()),
        "persons_dropped": {
            "no_time_at_risk": int(no_time.sum()),
            "no_residence": int((~no_time & ~has_rows).sum()),
            "no_residence_in_follow_up": int((~no_time & has_rows & ~with_ep).sum())},
        **per.counts,
        "periods_clipped_at_arrival": ep["clipped_at_arrival"],
        "episodes_out": len(out), "events": events,
        "censored": {str(k): int(v) for k, v in reasons.items() if k != "event" and v > 0},
        "events_on_move_date": ep["events_on_move_date"],
        "events_outside_residence": int((fu.event_seen & ~no_time).sum()) - events,
        "events_on_arrival_date": int((fu.event_seen & no_time).sum()),
        **fu.counts,
        "person_time": float(np.sum(ep["stop"] - ep["start"])),
    }
