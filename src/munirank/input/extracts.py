"""``munirank episodes``: register extracts in, the episode table ``fit`` reads out.

Reads the person table and the residence history (any format
:func:`~munirank.input.read.read_table` reads), the spec's crosswalk and municipal table,
builds the episodes (:func:`munirank.input.registers.register_episodes`) and writes into
``--out``, completely or not at all (:mod:`munirank.output.destinations`):

- ``spells.csv``: one row per episode, in the columns the spec's ``[data]`` names, plus
  ``exit_reason``, the carried covariates and, as asked, ``<group>_new`` and ``year``.
  **Per-person data**: an input to ``fit``, to stay on the secure server like the registers;
- ``spec.toml``: the spec for ``munirank fit DIR/spells.csv --spec DIR/spec.toml`` (the
  user's, with what ``episodes`` already applied taken out);
- ``municipal.csv``: the municipal table's rows of the municipalities with episodes (a table
  keyed by year: all its years of those municipalities, checked to cover every piece);
- ``summary.json`` and ``summary.txt``: aggregate counts of what was done, counts under
  ``[disclosure] min_cell`` blanked (:mod:`munirank.output.disclosure`).
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import tomli_w

from munirank.errors import InputError
from munirank.input import validate
from munirank.input.crosswalk import read_crosswalk
from munirank.input.read import read_table
from munirank.input.registers import (
    RegisterEpisodes,
    Sources,
    output_columns,
    register_episodes,
)
from munirank.input.spec import Spec, load_spec, spec_from_dict, spec_to_dict
from munirank.output import destinations
from munirank.output.disclosure import blank_small_count, blank_small_parts
from munirank.output.files import write_json, write_rows_csv

ABOUT = ("Aggregate counts only; counts under min_cell are blank (null). spells.csv is "
         "per-person data: keep it on the secure server, as an input to munirank fit.")


@dataclass(frozen=True)
class EpisodesResult:
    """What :func:`episodes` produced (the content of its output folder)."""

    out: Path
    episodes: pd.DataFrame
    summary: dict[str, Any]
    seconds: dict[str, float]  # building (reading included) and writing; not written out


def _municipal(spec: Spec) -> tuple[pd.DataFrame | None, str]:
    path = spec.resolve(spec.data.municipal_table)
    if path is None:
        return None, ""
    table = read_table(path, encoding=spec.data.encoding, str_columns=(spec.data.group,))
    if spec.data.municipal_year is not None:
        return validate.validate_municipal_years(table, spec, file=str(path)), str(path)
    return validate.validate_municipal_codes(table, spec, file=str(path)), str(path)


def build(persons: str | Path, residence: str | Path, spec: Spec,
          ) -> tuple[RegisterEpisodes, pd.DataFrame | None]:
    """Read the inputs and build the episodes; the municipal rows to copy (or None)."""
    r, d = spec.registers, spec.data
    if d.municipal_year is not None and not r.split_years:
        raise InputError("a municipal table keyed by year needs episodes split at calendar "
                         "years: set [registers] split_years = true",
                         column="data.municipal_year")
    crosswalk = read_crosswalk(spec)
    municipal, municipal_file = _municipal(spec)
    p = read_table(persons, encoding=d.encoding, str_columns=())
    h = read_table(residence, encoding=d.encoding, str_columns=(r.municipality,))
    known = None if municipal is None else pd.unique(municipal[d.group]).tolist()
    result = register_episodes(p, h, spec, crosswalk=crosswalk, known=known,
                               sources=Sources(str(persons), str(residence)))
    if municipal is None:
        return result, None
    ep = result.episodes
    if d.municipal_year is not None:
        needed = ep[[d.group, "year"]].drop_duplicates()
        validate.check_municipal_years(municipal, needed, spec, file=municipal_file)
    elif spec.covariates.municipal:  # fit's checks, with the file's row numbers, before writing
        validate.validate_municipal(municipal, spec, sorted(set(known or [])),
                                    file=municipal_file)
    return result, municipal[municipal[d.group].isin(pd.unique(ep[d.group]))]


def fit_spec(spec: Spec, *, entry: str, municipal_copied: bool) -> dict[str, Any]:
    """The spec ``fit`` reads beside the episodes: what ``episodes`` applied taken out.

    Split at years, ``[data] episode`` and ``year`` name the columns of the pieces; on the old
    municipalities of a crosswalk, ``[data] parent`` names ``<group>_new``, so that ``fit``
    nests the old municipalities in the new ones and ranks the new ones (remove the key to
    rank the old ones instead).
    """
    values = spec_to_dict(spec)
    values.pop("registers", None)
    data = values["data"]
    for key in ("crosswalk", "crosswalk_columns", "crosswalk_level"):
        data.pop(key, None)
    data["entry"] = entry
    columns = output_columns(spec)
    for key in ("episode", "year"):
        if key in columns:
            data[key] = columns[key]
    if "group_new" in columns:
        data["parent"] = columns["group_new"]
    if not municipal_copied:
        data.pop("municipal_year", None)
    if municipal_copied:
        data["municipal_table"] = "municipal.csv"
    else:
        data.pop("municipal_table", None)
        values["covariates"]["municipal"] = []
    spec_from_dict(values)  # what is written must load
    return values


def summarise(counts: dict[str, Any], spec: Spec) -> dict[str, Any]:
    """summary.json: the counts of :func:`register_episodes`, small ones blanked."""
    k = spec.disclosure.min_cell
    dropped = counts["persons_dropped"]
    persons = blank_small_parts({"with_episodes": counts["persons_with_episodes"],
                                 **{f"dropped_{n}": v for n, v in dropped.items()}}, min_cell=k)
    fates = {"counted": counts["events"], "outside_residence": counts["events_outside_residence"],
             "on_arrival_date": counts["events_on_arrival_date"],
             "after_end_of_observation": counts["events_after_end_of_observation"],
             "after_follow_up": counts["events_after_follow_up"]}
    episodes = blank_small_parts({"event": counts["events"], **counts["censored"]}, min_cell=k)
    rows = {n: blank_small_count(counts[f"residence_rows_{n}"], min_cell=k)
            for n in ("in", "of_other_persons", "empty", "merged", "read_as_successor")}
    r = spec.registers
    return {
        "about": ABOUT, "min_cell": k, "time_unit": spec.data.time_unit,
        "follow_up_months": r.follow_up_months,
        "crosswalk_level": spec.data.crosswalk_level if spec.data.crosswalk else None,
        "split_years": r.split_years,
        "persons": {"in": blank_small_count(counts["persons_in"], min_cell=k), **persons},
        "residence_rows": rows,
        "periods_clipped_at_arrival": blank_small_count(counts["periods_clipped_at_arrival"],
                                                        min_cell=k),
        "episodes": {"out": blank_small_count(counts["episodes_out"], min_cell=k),
                     "before_year_split": counts.get("episodes_before_year_split"),
                     "events": episodes.pop("event"), "censored": episodes},
        "events": {"persons_with_event_date": blank_small_count(sum(fates.values()),
                                                                min_cell=k),
                   **blank_small_parts(fates, min_cell=k),
                   "on_move_date": blank_small_count(counts["events_on_move_date"],
                                                     min_cell=k)},
        "person_time": round(counts["person_time"], 6),
    }


_LABELS = {"in": "in", "with_episodes": "with episodes", "out": "episodes out",
           "dropped_no_time_at_risk": "dropped: no time at risk (event or end on arrival)",
           "dropped_no_residence": "dropped: no residence rows",
           "dropped_no_residence_in_follow_up": "dropped: no residence during follow-up",
           "of_other_persons": "of persons not in the person table", "empty": "from = to",
           "merged": "merged with the period before (same municipality)",
           "read_as_successor": "dated after a reform merged their code away",
           "counted": "counted (in the municipality lived in on the event date)",
           "outside_residence": "not counted: no residence on the event date",
           "on_arrival_date": "not counted: on the arrival date",
           "after_end_of_observation": "not counted: after the end of observation",
           "after_follow_up": "not counted: after the follow-up limit",
           "on_move_date": "of the counted, on a move date (counted where moved from)",
           "persons_with_event_date": "persons with an event date"}


def summary_text(summary: dict[str, Any]) -> str:
    """summary.txt: the summary in words."""
    def show(v: Any) -> str:
        return "-" if v is None else f"{v:,}" if isinstance(v, int) else str(v)

    lines = ["munirank episodes: register extracts to episodes",
             f"Aggregate counts only; '-' = blank (fewer than {summary['min_cell']}). "
             "spells.csv is per-person data:",
             "keep it on the secure server, as an input to munirank fit.",
             f"time unit {summary['time_unit']}; follow-up limit (months) "
             f"{summary['follow_up_months'] or 'none'}; crosswalk "
             f"{summary['crosswalk_level'] or 'none'}; split at years "
             f"{'yes' if summary['split_years'] else 'no'}", ""]
    for section in ("persons", "residence_rows", "episodes", "events"):
        lines.append(section.replace("_", " ") + ":")
        for key, value in summary[section].items():
            if key == "censored":
                lines += [f"  {'censored: ' + reason:<60} {show(n):>12}"
                          for reason, n in value.items()]
            elif value is not None or key != "before_year_split":
                lines.append(f"  {_LABELS.get(key, key.replace('_', ' ')):<60} {show(value):>12}")
    lines += ["", f"{'periods starting before arrival (clipped at arrival)':<62} "
              f"{show(summary['periods_clipped_at_arrival']):>12}",
              f"{'person-time (' + summary['time_unit'] + ')':<62} "
              f"{summary['person_time']:>12,.1f}"]
    return "\n".join(lines) + "\n"


def _write(tmp: Path, result: RegisterEpisodes, municipal: pd.DataFrame | None, spec: Spec,
           summary: dict[str, Any]) -> None:
    write_rows_csv(result.episodes, tmp / "spells.csv")  # times to the last bit
    if municipal is not None:
        municipal.to_csv(tmp / "municipal.csv", index=False, lineterminator="\n")
    entry = spec.data.entry or "start"
    (tmp / "spec.toml").write_text(tomli_w.dumps(fit_spec(
        spec, entry=entry, municipal_copied=municipal is not None)), encoding="utf-8")
    write_json(summary, tmp / "summary.json")
    (tmp / "summary.txt").write_text(summary_text(summary), encoding="utf-8")


def episodes(persons: str | Path, residence: str | Path, *, spec: str | Path | Spec,
             out: str | Path, overwrite: bool = False) -> EpisodesResult:
    """Build the episode table from register extracts and write it (``munirank episodes``).

    Parameters
    ----------
    persons : str or Path
        The person table (.csv, .parquet, .dta, .sas7bdat, .xpt).
    residence : str or Path
        The residence history.
    spec : str, Path or Spec
        The SPEC.toml (its ``[registers]`` names the columns; ``[data] crosswalk`` and
        ``municipal_table`` are relative to it).
    out : str or Path
        Output folder: spells.csv, spec.toml, [municipal.csv], summary.json, summary.txt.
    overwrite : bool
        Write into a folder that holds files munirank did not write (they are kept).

    Returns
    -------
    EpisodesResult
        The folder, the episode table and the summary (blanked as written).

    Raises
    ------
    InputError
        On bad input, naming the file, column and rows; nothing is written.

    Examples
    --------
    >>> munirank.episodes("persons.csv", "residence.csv", spec="spec.toml",
    ...                   out="episodes")  # doctest: +SKIP
    """
    spec_obj = spec if isinstance(spec, Spec) else load_spec(spec)
    inputs = [p for p in (persons, residence, None if isinstance(spec, Spec) else spec,
                          spec_obj.resolve(spec_obj.data.crosswalk),
                          spec_obj.resolve(spec_obj.data.municipal_table)) if p is not None]
    destinations.claim_folder(out, overwrite=overwrite, inputs=inputs)
    t0 = time.perf_counter()
    result, municipal = build(persons, residence, spec_obj)
    summary = summarise(result.counts, spec_obj)
    t1 = time.perf_counter()
    with destinations.atomic_folder(out, command="episodes", overwrite=overwrite,
                                    inputs=inputs) as tmp:
        _write(tmp, result, municipal, spec_obj, summary)
    seconds = {"build": t1 - t0, "write": time.perf_counter() - t1}
    return EpisodesResult(Path(out), result.episodes, summary, seconds)


def episodes_command(args: argparse.Namespace) -> int:
    """``munirank episodes``."""
    result = episodes(args.persons, args.residence, spec=args.spec, out=args.out,
                      overwrite=args.overwrite)
    s = result.summary

    def show(v: int | None) -> str:
        return "-" if v is None else f"{v:,}"

    print(f"episodes: {show(s['persons']['in'])} persons, {show(s['persons']['with_episodes'])} "
          f"with episodes; {show(s['episodes']['out'])} episodes, "
          f"{show(s['episodes']['events'])} events -> {result.out}/spells.csv, spec.toml, "
          "summary.txt")
    print("spells.csv is per-person data: keep it on the secure server (summary.txt and "
          "summary.json hold aggregate counts only)")
    return 0
