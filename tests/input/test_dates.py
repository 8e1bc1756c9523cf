"""Dates and codes as registers give them."""

from __future__ import annotations

import datetime

import numpy as np
import pandas as pd
import pytest

from munirank.errors import InputError
from munirank.input.dates import NAT, as_text_codes, parse_dates, unit_ns


def _ns(text: str) -> int:
    return pd.Timestamp(text).as_unit("ns").value


def test_text_dates_objects_and_datetimes_give_the_same_instants():
    text = pd.Series(["2001-01-01", None, "2001-03-04T12:00", " "])
    want = [_ns("2001-01-01"), NAT, _ns("2001-03-04 12:00"), NAT]
    assert parse_dates(text, file="f", column="c", required=False).tolist() == want
    objects = pd.Series([datetime.date(2001, 1, 1), None], dtype=object)
    assert parse_dates(objects, file="f", column="c", required=False).tolist() == want[:2]
    stamps = pd.to_datetime(pd.Series(["2001-01-01", None]))
    assert parse_dates(stamps, file="f", column="c", required=False).tolist() == want[:2]


def test_many_rows_with_few_distinct_dates_are_parsed_once_each():
    days = pd.Series(np.tile(["2001-01-01", "2002-02-02", None], 100_000), dtype=object)
    out = parse_dates(days, file="f", column="c", required=False)
    assert out[:3].tolist() == [_ns("2001-01-01"), _ns("2002-02-02"), NAT]


def test_bad_dates_name_their_rows():
    with pytest.raises(InputError, match="does not parse .e.g. '2001-02-30'") as info:
        parse_dates(pd.Series(["2001-01-01", "2001-02-30", "x", "2001-02-30"]), file="f.csv",
                    column="dato", required=False)
    assert (info.value.file, info.value.column, info.value.rows) == ("f.csv", "dato", [2, 3, 4])
    with pytest.raises(InputError, match="not numbers.*date format"):
        parse_dates(pd.Series([15000.0, None]), file="f", column="c", required=False)
    with pytest.raises(InputError, match="missing values") as info:
        parse_dates(pd.Series(["2001-01-01", None]), file="f", column="c", required=True)
    assert info.value.rows == [2]


def test_codes_as_fit_reads_them_and_units_as_fit_converts_them():
    assert as_text_codes(pd.Series([101.0, 147.0, 101.0]), file="f", column="k").tolist() == [
        "101", "147", "101"]
    assert as_text_codes(pd.Series(["0101 ", "0101"]), file="f", column="k").tolist() == [
        "0101", "0101"]
    with pytest.raises(InputError, match="missing") as info:
        as_text_codes(pd.Series(["A", None, ""]), file="f", column="k")
    assert info.value.rows == [2, 3]
    assert unit_ns("months") / unit_ns("days") == pytest.approx(365.25 / 12)
    assert unit_ns("weeks") / unit_ns("days") == pytest.approx(365.25 / 52)  # 1/52 of a year
