"""Reading spell (and municipal) tables: CSV, Parquet, Stata and SAS, with a data hash.

Every reader returns a DataFrame with a fresh 0-based index (so messages can number rows as in
the file) and string columns kept as text where asked; an undecodable byte is reported with
its line and column instead of a traceback.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
from pathlib import Path
from typing import TYPE_CHECKING

from munirank.errors import InputError

if TYPE_CHECKING:  # imported where a file is read: check_readable runs without it
    import pandas as pd

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
    path = check_readable(path, encoding=encoding)
    try:
        df = _read(path, path.suffix.lower(), encoding, str_columns)
    except InputError:
        raise
    except Exception as err:  # any reader failure is bad input, reported in one line
        hint = " (check [data] encoding)" if "encoding" in str(err).lower() else ""
        raise InputError(f"cannot read file ({type(err).__name__}: {err}){hint}",
                         file=str(path)) from None
    return _fresh_index(df)


def check_readable(path: str | Path, *, encoding: str = "utf-8") -> Path:
    """Check, without reading it, that ``path`` is a file of a known type and encoding.

    Cheap (no pandas): a command calls it before it imports its libraries, so that a missing
    file exits at once.

    Raises
    ------
    InputError
        If the file is missing, a folder, of an unknown type or empty, or the encoding unknown.
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
    return path


def _fresh_index(df: pd.DataFrame) -> pd.DataFrame:
    """Drop a default index, keep a named one (Parquet can store either) as a column."""
    import pandas as pd

    if isinstance(df.index, pd.RangeIndex) and df.index.start == 0 and df.index.step == 1:
        return df
    return df.reset_index(drop=all(name is None for name in df.index.names))


def _read(path: Path, suffix: str, encoding: str, str_columns: tuple[str, ...]) -> pd.DataFrame:
    import pandas as pd

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
    import pandas as pd

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
