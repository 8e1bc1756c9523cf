"""``munirank report DIR --out report.html``: one self-contained HTML file from a fit folder.

The report reads only the folder that ``munirank fit`` (or ``compare``) wrote, computes the
rank probabilities from the rank draws (:mod:`munirank.posterior.ranks`), lets
:mod:`munirank.reporting.plots` draw the figures and embeds them as base64 PNG in a Jinja2 template.
It has no external URL, script or font, so it opens offline; it holds municipality-level numbers
only, with counts under the disclosure threshold shown as in municipalities.csv (blank, "<5").
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import xarray as xr

from munirank.errors import InputError
from munirank.output import destinations, files
from munirank.posterior.ranks import rank_probabilities
from munirank.posterior.statements import pairwise_lines, statements_for
from munirank.reporting import plots

LOG = logging.getLogger(__name__)
SECTIONS = ("summary", "caterpillar", "ranks", "top-bottom", "statements", "shrinkage", "funnel",
            "ppc", "comparison", "diagnostics", "methods", "table")
REQUIRED = ("municipalities.csv", "diagnostics.json", "run.json", "posterior.nc")
N_SURVIVAL_PANELS = 6  # national and the five largest municipalities


@dataclass(frozen=True)
class FitFolder:
    """The contents of a fit (or compare) output folder that the report uses."""

    path: Path
    municipalities: pd.DataFrame
    covariates: pd.DataFrame | None
    diagnostics: dict[str, Any]
    run: dict[str, Any]
    ranks: xr.DataArray
    survival: pd.DataFrame | None
    comparison: pd.DataFrame | None
    comparison_summary: str | None
    pairwise: pd.DataFrame | None = None  # pairwise.csv, indexed by municipality
    # [data] period: municipalities.csv in long form, periods.json, changes.csv (the rest of
    # the report shows the latest period)
    period_table: pd.DataFrame | None = None
    periods: dict[str, Any] | None = None
    changes: pd.DataFrame | None = None

    @property
    def ci_prob(self) -> float:
        """Probability of every interval in the folder's tables."""
        return float(self.run.get("spec", {}).get("sampling", {}).get("ci_prob", 0.9))

    @property
    def top_k(self) -> int:
        """The k of P(top k) and P(bottom k)."""
        return int(self.run.get("spec", {}).get("ranking", {}).get("top_k", 10))

    @property
    def min_cell(self) -> int:
        """The disclosure threshold the counts were blanked at."""
        return int(self.run.get("spec", {}).get("disclosure", {}).get("min_cell", 5))


def _csv(path: Path) -> pd.DataFrame:
    table = pd.read_csv(path, dtype={"municipality": str, "group": str})
    for col in ("n_spells", "n_events", "at_risk"):
        if col in table:
            table[col] = table[col].astype("Int64")
    return table


def load_folder(folder: str | Path) -> FitFolder:
    """Read a fit folder.

    Parameters
    ----------
    folder : str or Path
        Output folder of ``munirank fit`` or ``munirank compare``.

    Returns
    -------
    FitFolder

    Raises
    ------
    InputError
        If the folder or one of its required files is missing.
    """
    path = Path(folder)
    for name in REQUIRED:
        if not (path / name).is_file():
            raise InputError(f"not a fit folder: {name} is missing (run `munirank fit` first)",
                             file=str(path))
    ff = FitFolder(
        path=path, municipalities=_required(path / "municipalities.csv", _csv),
        covariates=_optional(path / "covariates.csv", _csv),
        diagnostics=_required(path / "diagnostics.json", _json),
        run=_required(path / "run.json", _json),
        ranks=_required(path / "posterior.nc", _rank_draws),
        survival=_optional(path / "survival.csv", _csv),
        comparison=_optional(path / "comparison.csv", _csv),
        comparison_summary=_optional(path / "comparison_summary.txt", Path.read_text),
        pairwise=_optional(path / "pairwise.csv", _pairwise))
    if "period" in ff.municipalities:  # measurement periods (reporting.period_report)
        from munirank.reporting.period_report import latest_period

        ff = latest_period(ff)
    return ff


def _json(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text(encoding="utf-8")))


def _rank_draws(path: Path) -> xr.DataArray:
    with xr.open_datatree(path, engine="netcdf4") as tree:
        return tree["derived"]["rank"].load()


# Reading a file of a fit folder can fail in as many ways as the file can be damaged (a
# truncated netCDF, a CSV edited by hand); each is reported in one line.
def _required(path: Path, read: Callable[[Path], Any]) -> Any:
    try:
        return read(path)
    except Exception as err:  # noqa: BLE001 - any damage is bad input
        raise InputError(f"cannot be read ({type(err).__name__}: {err})", file=str(path)) from None


def _optional(path: Path, read: Callable[[Path], Any]) -> Any:
    if not path.is_file():
        return None
    try:
        return read(path)
    except Exception as err:  # noqa: BLE001 - a damaged optional file only loses its section
        LOG.warning("%s: cannot be read (%s: %s); the report leaves it out", path,
                    type(err).__name__, " ".join(str(err).split()))
        return None


def _pairwise(path: Path) -> pd.DataFrame:
    """pairwise.csv (written with ``[ranking] pairwise``) as P(row faster than column)."""
    return pd.read_csv(path, dtype={"municipality": str}).set_index("municipality")


def _png(fig: Any) -> str:
    return base64.b64encode(plots.figure_to_png(fig)).decode("ascii")


def _figure_jobs(ff: FitFolder) -> dict[str, Callable[[], Any]]:
    """Section id -> a function drawing its figure (None where the data are absent)."""
    ci, table, comp = ff.ci_prob, ff.municipalities, ff.comparison
    order = table.sort_values("rank_mean", kind="stable")["municipality"].tolist()
    jobs: dict[str, Callable[[], Any]] = {
        "caterpillar": lambda: plots.plot_caterpillar(table, ci_prob=ci),
        "ranks": lambda: plots.plot_rank_distribution(rank_probabilities(ff.ranks), order=order),
        "top-bottom": lambda: plots.plot_top_bottom(table, top_k=ff.top_k),
    }
    if comp is not None:
        jobs["shrinkage"] = lambda: plots.plot_shrinkage(comp)
        jobs["funnel"] = lambda: plots.plot_funnel(comp)
        jobs["comparison"] = lambda: plots.plot_rank_comparison(comp, ci_prob=ci)
    if ff.periods is not None:
        from munirank.reporting.period_report import slope_jobs

        jobs |= slope_jobs(ff)
    if ff.survival is not None:
        survival = ff.survival
        groups = list(dict.fromkeys(survival["group"]))[:N_SURVIVAL_PANELS]
        jobs["ppc"] = lambda: plots.plot_survival(survival, groups=groups, ci_prob=ci)
    return jobs


def draw_figures(ff: FitFolder, *, progress: bool = True) -> dict[str, str]:
    """Base64 PNG of every figure the folder supports, with a progress bar on stderr."""
    from rich.console import Console
    from rich.progress import track

    jobs = _figure_jobs(ff)
    console = Console(stderr=True, quiet=not progress)
    figures = {}
    for key in track(list(jobs), description="Building report", console=console,
                     transient=True):
        figures[key] = _png(jobs[key]())
    return figures


def _count(value: Any, min_cell: int, *, spells: bool) -> str:
    """A count as shown: the number, "<5" for blanked spells, blank for blanked events."""
    if pd.isna(value):
        return f"<{min_cell}" if spells else ""
    return str(int(value))


def statements(table: pd.DataFrame, *, top_k: int, n: int = 5) -> list[str]:
    """Plain sentences on who is most likely among the k fastest and the k slowest."""
    out = []
    for col, word in ((f"p_top{top_k}", "fastest"), (f"p_bottom{top_k}", "slowest")):
        for _, row in table.nlargest(n, col).iterrows():
            out.append(f"{row['municipality']} is among the {top_k} {word} with probability "
                       f"{row[col]:.2f}.")
    return out


def table_rows(ff: FitFolder) -> list[dict[str, Any]]:
    """Rows of the sortable municipality table (display text and sort key per cell)."""
    k, rows = ff.top_k, []
    for _, r in ff.municipalities.iterrows():
        rows.append({
            "municipality": r["municipality"],
            "n_spells": _count(r["n_spells"], ff.min_cell, spells=True),
            "n_spells_key": -1 if pd.isna(r["n_spells"]) else int(r["n_spells"]),
            "n_events": _count(r["n_events"], ff.min_cell, spells=False),
            "n_events_key": -1 if pd.isna(r["n_events"]) else int(r["n_events"]),
            "effect": r["effect_months_mean"], "effect_lo": r["effect_months_lo"],
            "effect_hi": r["effect_months_hi"], "rank": r["rank_mean"],
            "rank_lo": int(r["rank_lo"]), "rank_hi": int(r["rank_hi"]),
            "p_top": r[f"p_top{k}"], "p_bottom": r[f"p_bottom{k}"], "p_faster": r["p_faster"],
        })
    return rows


def _summary_numbers(ff: FitFolder) -> dict[str, Any]:
    t = ff.municipalities
    return {
        "n_municipalities": len(t),
        "n_episodes": ff.run.get("n_episodes"),
        "n_faster": int((t["effect_months_hi"] < 0).sum()),
        "n_slower": int((t["effect_months_lo"] > 0).sum()),
        "n_small": int(t["small_cell"].astype(bool).sum()),
        "statements": statements(t, top_k=ff.top_k),
    }


SET_LABELS = {("top", "contains"): "The {k} fastest are all among",
              ("top", "each"): "Each among the {k} fastest",
              ("bottom", "contains"): "The {k} slowest are all among",
              ("bottom", "each"): "Each among the {k} slowest"}


def statement_rows(ff: FitFolder) -> list[dict[str, Any]]:
    """Credible sets, tiers and sentences per ranking (all, and the named subset if any).

    Computed from the folder's rank draws by :mod:`munirank.posterior.statements` (the same function
    that wrote credible_sets.csv, tiers.csv and statements.txt); municipality names only, no
    counts, so nothing the disclosure control blanked can reappear here.
    """
    names = set(ff.ranks["municipality"].to_numpy().tolist())
    subset = [m for m in ff.run.get("spec", {}).get("ranking", {}).get("subset", [])
              if m in names]
    out = []
    for r in statements_for(ff.ranks, top_k=ff.top_k, ci_prob=ff.ci_prob, subset=subset,
                            table=ff.municipalities):
        sets = [{"label": SET_LABELS[s.tail, s.kind].format(k=s.k), "kind": s.kind,
                 "probability": s.probability, "size": len(s.members),
                 "proved_minimal": s.proved_minimal, "members": ", ".join(s.members)}
                for s in r.sets]
        tiers = [{"tier": int(t), "size": len(g), "members": ", ".join(g["municipality"]),
                  "p_next": g["p_faster_than_next"].iloc[0]}
                 for t, g in r.tiers.groupby("tier")]
        out.append({"scope": r.scope, "n_ranked": r.n_ranked, "k": r.top_k, "sets": sets,
                    "tiers": tiers, "tiering_probability": r.tiers.attrs["tiering_probability"],
                    "sentences": r.sentences, "details": r.details})
    return out


def build_context(ff: FitFolder, figures: dict[str, str]) -> dict[str, Any]:
    """Everything the template shows."""
    from munirank.reporting.outcomes import outcome_context

    spec = ff.run.get("spec", {})
    covs = ff.covariates.to_dict("records") if ff.covariates is not None else []
    periods = None
    if ff.periods is not None:
        from munirank.reporting.period_report import period_context

        periods = period_context(ff)
    outcomes = outcome_context(ff.path, top_k=ff.top_k)  # None without [data] outcome
    extra = (("periods",) if periods is not None else ()) + (
        ("outcomes",) if outcomes is not None else ())
    return {
        "title": f"munirank report: {ff.path.name}",
        "sections": (*SECTIONS[:5], *extra, *SECTIONS[5:]),
        "periods": periods,
        "outcomes": outcomes,
        "figures": figures, "ci_pct": f"{100 * ff.ci_prob:g} %",
        "one_sided_pct": f"{100 * (1 + ff.ci_prob) / 2:g} %", "top_k": ff.top_k,
        "min_cell": ff.min_cell, "converged": bool(ff.diagnostics.get("converged", False)),
        "diagnostics": ff.diagnostics, "run": ff.run, "spec": spec,
        "priors": spec.get("model", {}).get("priors", {}), "covariates": covs,
        "versions": ff.run.get("versions", {}),
        "generator": f"{destinations.GENERATOR} {files.versions().get('munirank', '')}",
        "summary": _summary_numbers(ff),
        "rows": table_rows(ff), "rankings": statement_rows(ff),
        "pairwise": (pairwise_lines(ff.pairwise, ff.ci_prob) if ff.pairwise is not None
                     else []),
        "has_comparison": ff.comparison is not None,
        "comparison_summary": ff.comparison_summary,
        "survival_groups": (list(dict.fromkeys(ff.survival["group"]))[:N_SURVIVAL_PANELS]
                            if ff.survival is not None else []),
    }


def render(context: dict[str, Any]) -> str:
    """Fill the packaged Jinja2 template (autoescaped)."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("munirank.reporting", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined)
    return env.get_template("report.html.j2").render(**context)


def report(folder: str | Path, *, out: str | Path, progress: bool = True,
           overwrite: bool = False) -> Path:
    """Write the self-contained HTML report of a fit folder (``munirank report``).

    Parameters
    ----------
    folder : str or Path
        Output folder of ``munirank fit`` or ``munirank compare``.
    out : str or Path
        The HTML file to write (replaced only when complete).
    progress : bool
        Show a progress bar on stderr while the figures are drawn.
    overwrite : bool
        Replace a file at ``out`` that munirank did not write (a report munirank wrote is
        replaced anyway).

    Returns
    -------
    Path
        ``out``.

    Raises
    ------
    InputError
        If ``folder`` is not a fit folder, or ``out`` may not be replaced
        (:func:`munirank.output.destinations.claim_file`).

    Examples
    --------
    >>> report("fit", out="report.html")  # doctest: +SKIP
    """
    destinations.claim_file(out, overwrite=overwrite)
    ff = load_folder(folder)
    html = render(build_context(ff, draw_figures(ff, progress=progress)))
    out = Path(out)
    with destinations.atomic_file(out, overwrite=overwrite) as tmp:
        tmp.write_text(html, encoding="utf-8")
    return out


def report_command(args: argparse.Namespace) -> int:
    """CLI entry: ``munirank report FOLDER --out FILE``."""
    out = report(args.folder, out=args.out, progress=not getattr(args, "quiet", False),
                 overwrite=args.overwrite)
    print(f"report -> {out}", file=sys.stdout)
    return 0
