"""Read spell data and build validated episodes with named dimensions.

An *episode* is one row (entry, exit] in one municipality: a person who moves contributes a
censored episode in the first municipality and a delayed-entry episode in the next. Times are
converted to months. Individual covariates are standardised (numeric: (x - mean) / sd;
categorical: dummy-coded against the most frequent level, then centred), municipal covariates
are standardised over the municipalities in the data. The episodes are an ``xarray.Dataset``
with dims ``episode``, ``municipality``, ``covariate``, ``municipal_covariate``.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from munirank import validate
from munirank.errors import InputError
from munirank.spec import TIME_UNITS_PER_MONTH, Spec

READERS = (".csv", ".parquet", ".dta", ".sas7bdat", ".xpt")


def read_table(path: str | Path, *, encoding: str = "utf-8",
               str_columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """Read a CSV, Parquet, Stata, SAS or SAS transport file into a DataFrame.

    Parameters
    ----------
    path : str or Path
        The file; its suffix chooses the reader (.csv, .parquet, .dta, .sas7bdat, .xpt).
    encoding : str
        Text encoding (e.g. ``"latin-1"``). A CSV that is not valid in it, or that is UTF-8
        while a single-byte encoding is declared, is refused with the row and column of the
        first offending byte. SAS and Stata files carry their own encoding, which is used
        unless a non-UTF-8 one is declared.
    str_columns : tuple of str
        Columns to read as text (municipality codes keep leading zeros).

    Returns
    -------
    pandas.DataFrame
        With a fresh 0-based index, so that row ``i`` is data row ``i + 1`` of the file.

    Raises
    ------
    InputError
        If the file is missing, of an unknown type, empty, unreadable or wrongly encoded.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in READERS:
        raise InputError(f"unknown file type {suffix!r}; use one of {READERS}", file=str(path))
    if path.is_dir():
        raise InputError("is a folder, not a file", file=str(path))
    if not path.is_file():
        raise InputError("file not found", file=str(path))
    if path.stat().st_size == 0:
        raise InputError("file is empty", file=str(path))
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise InputError(f"unknown encoding {encoding!r} (set [data] encoding, e.g. 'utf-8' "
                         "or 'latin-1')", file=str(path)) from None
    try:
        df = _read(path, suffix, encoding, str_columns)
    except InputError:
        raise
    except Exception as err:  # any reader failure is bad input, reported in one line
        hint = " (check [data] encoding)" if "encoding" in str(err).lower() else ""
        raise InputError(f"cannot read file ({type(err).__name__}: {err}){hint}",
                         file=str(path)) from None
    return _fresh_index(df)


def _fresh_index(df: pd.DataFrame) -> pd.DataFrame:
    """Drop a default index, keep a named one (Parquet can store either) as a column."""
    if isinstance(df.index, pd.RangeIndex) and df.index.start == 0 and df.index.step == 1:
        return df
    return df.reset_index(drop=all(name is None for name in df.index.names))


def _read(path: Path, suffix: str, encoding: str, str_columns: tuple[str, ...]) -> pd.DataFrame:
    if suffix == ".csv":
        return _read_csv(path, encoding, str_columns)
    if suffix == ".parquet":
        return pd.read_parquet(path)
    import pyreadstat

    readers = {".dta": pyreadstat.read_dta, ".sas7bdat": pyreadstat.read_sas7bdat,
               ".xpt": pyreadstat.read_xport}
    df, _meta = readers[suffix](str(path), encoding=_readstat_encoding(encoding))
    return df


def _readstat_encoding(encoding: str) -> str | None:
    """ReadStat's (iconv's) name for an encoding; None for UTF-8.

    SAS and Stata files record their own encoding (Stata before version 14: Windows-1252),
    which ReadStat uses when given None. A declared non-UTF-8 encoding overrides it.
    """
    name = codecs.lookup(encoding).name
    return None if name == "utf-8" else name


def _read_csv(path: Path, encoding: str, str_columns: tuple[str, ...]) -> pd.DataFrame:
    raw = path.read_bytes()
    if b"\x00" in raw[:4096]:
        raise InputError("holds binary data, not comma-separated text: is it really a CSV?",
                         file=str(path))
    text = _decode(raw, encoding, str(path))
    header = next(csv.reader(io.StringIO(text.partition("\n")[0].rstrip("\r"))), [])
    if len(header) == 1 and ";" in header[0]:
        raise InputError("columns are separated by ';': save the file as comma-separated CSV "
                         "with '.' as the decimal mark", file=str(path))
    seen: set[str] = set()
    for name in header:
        if name in seen:
            raise InputError("duplicated column name: keep one", file=str(path), column=name)
        seen.add(name)
    dtype = dict.fromkeys(str_columns, str)
    return pd.read_csv(io.StringIO(text), dtype=dtype, keep_default_na=True)


def _decode(raw: bytes, encoding: str, file: str) -> str:
    """Decode a CSV's bytes, or say where and why they do not fit the declared encoding."""
    utf8 = codecs.lookup(encoding).name == "utf-8"
    try:
        text = raw.decode("utf-8-sig" if utf8 else encoding)
    except UnicodeDecodeError as err:
        row, column = _locate(raw, err.start)
        raise InputError(
            f"byte 0x{raw[err.start]:02x} is not valid {encoding}: declare the file's encoding "
            "in the spec, e.g. [data] encoding = \"latin-1\"", file=file, column=column,
            rows=[row] if row else None) from None
    if not utf8 and not raw.isascii() and _is_utf8(raw):
        first = next(i for i, b in enumerate(raw) if b >= 0x80)
        row, column = _locate(raw, first)
        raise InputError(
            f"the file is UTF-8 but [data] encoding says {encoding!r}: set encoding = "
            "\"utf-8\" (or remove the line)", file=file, column=column,
            rows=[row] if row else None)
    return text


def _is_utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _locate(raw: bytes, offset: int) -> tuple[int, str | None]:
    """Data row (1 = first after the header; 0 = the header) and column of a byte offset."""
    row = raw.count(b"\n", 0, offset)
    if row == 0:
        return 0, None
    header = raw.partition(b"\n")[0].decode("latin-1").rstrip("\r").split(",")
    line_start = raw.rfind(b"\n", 0, offset) + 1
    field = raw.count(b",", line_start, offset)
    return row, header[field] if field < len(header) else None


def data_hash(path: str | Path) -> str:
    """SHA-256 of a file's bytes (recorded in run.json)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _design(df: pd.DataFrame, spec: Spec) -> tuple[np.ndarray, list[str], np.ndarray, np.ndarray]:
    """Standardised individual design matrix, names, centres and scales."""
    cov = spec.covariates
    blocks, names, centres, scales = [], [], [], []
    for c in cov.individual:
        if c in cov.categorical:
            levels = df[c].value_counts().index.tolist()  # most frequent first = reference
            for level in sorted(levels[1:]):
                col = (df[c] == level).to_numpy(float)
                blocks.append(col)
                names.append(f"{c}[{level}]")
                centres.append(col.mean())
                scales.append(1.0)
        else:
            x = df[c].to_numpy(float)
            blocks.append(x)
            names.append(c)
            centres.append(x.mean())
            scales.append(x.std())
    if not blocks:
        return np.zeros((len(df), 0)), [], np.zeros(0), np.zeros(0)
    raw = np.column_stack(blocks)
    centre, scale = np.asarray(centres), np.asarray(scales)
    return (raw - centre) / scale, names, centre, scale


def build_episodes(spells: pd.DataFrame, spec: Spec, *, file: str = "data",
                   municipal: pd.DataFrame | None = None,
                   municipal_file: str = "municipal table") -> xr.Dataset:
    """Turn validated spells (and the municipal table) into an episodes Dataset.

    Parameters
    ----------
    spells : pandas.DataFrame
        Output of :func:`munirank.validate.validate_spells`.
    spec : Spec
        The analysis spec.
    file : str
        Name of the spells file, for messages.
    municipal : pandas.DataFrame, optional
        The raw municipal table, one row per municipality.
    municipal_file : str
        Name of the municipal file, for messages.

    Returns
    -------
    xarray.Dataset
        Variables ``entry``, ``exit`` (months), ``event`` and ``episode_municipality``
        (dim ``episode``); ``x`` (``episode``, ``covariate``); ``z`` (``municipality``,
        ``municipal_covariate``); ``n_spells``, ``n_events`` (``municipality``); centres and
        scales of the covariates.
    """
    d = spec.data
    per_month = TIME_UNITS_PER_MONTH[d.time_unit]
    exit_m = spells[d.time].to_numpy(float) / per_month
    entry_m = (spells[d.entry].to_numpy(float) / per_month if d.entry else np.zeros(len(spells)))
    event = spells[d.event].to_numpy(np.int8)
    group = spells[d.group].astype(str).to_numpy()
    validate.check_horizon(exit_m, spec.outcome.horizon_months, file=file, column=d.time)
    x, names, centre, scale = _design(spells, spec)
    validate.check_design(x, names, file=file)
    municipalities = sorted(set(group))
    if spec.ranking.pairwise:  # checked before sampling, so a typo costs no fit
        validate.check_named_municipalities(spec.ranking.pairwise, municipalities,
                                            source="[ranking] pairwise", file=file,
                                            column=d.group)
    ds = xr.Dataset(
        {
            "entry": ("episode", entry_m),
            "exit": ("episode", exit_m),
            "event": ("episode", event),
            "episode_municipality": ("episode", group.astype(object)),
            "x": (("episode", "covariate"), x),
            "x_centre": ("covariate", centre),
            "x_scale": ("covariate", scale),
        },
        coords={"episode": np.arange(len(spells)), "covariate": names,
                "municipality": municipalities},
    )
    counts = pd.Series(event).groupby(group)
    ds["n_spells"] = ("municipality", counts.size().loc[municipalities].to_numpy())
    ds["n_events"] = ("municipality", counts.sum().loc[municipalities].to_numpy().astype(int))
    ds = ds.merge(_municipal(spec, municipal, municipalities, municipal_file))
    ds.attrs.update(time_unit="months", horizon_months=float(spec.outcome.horizon_months),
                    source=str(file))
    return ds


def _municipal(spec: Spec, table: pd.DataFrame | None, municipalities: list[str],
               file: str) -> xr.Dataset:
    names = list(spec.covariates.municipal)
    if table is None or not names:
        z = np.zeros((len(municipalities), 0))
        centre = scale = np.zeros(0)
    else:
        checked = validate.validate_municipal(table, spec, municipalities, file=file)
        raw = checked[names].to_numpy(float)
        centre, scale = raw.mean(axis=0), raw.std(axis=0)
        z = (raw - centre) / scale
        validate.check_design(z, names, file=file)
    return xr.Dataset(
        {"z": (("municipality", "municipal_covariate"), z),
         "z_centre": ("municipal_covariate", centre), "z_scale": ("municipal_covariate", scale)},
        coords={"municipality": municipalities, "municipal_covariate": names},
    )


def load_episodes(data_path: str | Path, spec: Spec) -> xr.Dataset:
    """Read, validate and build episodes from a data file and a spec (the public boundary).

    Parameters
    ----------
    data_path : str or Path
        Spell file (.csv, .parquet, .dta, .sas7bdat, .xpt).
    spec : Spec
        Loaded spec; its municipal table path is relative to the spec file.

    Returns
    -------
    xarray.Dataset
        See :func:`build_episodes`.

    Raises
    ------
    InputError
        On any problem with the files.
    """
    file = str(data_path)
    raw = read_table(data_path, encoding=spec.data.encoding, str_columns=(spec.data.group,))
    spells = validate.validate_spells(raw, spec, file=file)
    municipal = None
    municipal_path = spec.resolve(spec.data.municipal_table)
    if municipal_path is not None and spec.covariates.municipal:
        municipal = read_table(municipal_path, encoding=spec.data.encoding,
                               str_columns=(spec.data.group,))
    ds = build_episodes(spells, spec, file=file, municipal=municipal,
                        municipal_file=str(municipal_path))
    if len(ds.episode) < 2:
        raise InputError("need at least two spells", file=file)
    return ds


def as_codes(episodes: xr.Dataset) -> np.ndarray:
    """Integer code of each episode's municipality, in the order of the municipality coord."""
    cat = pd.Categorical(episodes["episode_municipality"].to_numpy(),
                         categories=episodes["municipality"].to_numpy())
    return np.asarray(cat.codes, dtype=np.int64)
