"""Presets: municipality counts that cannot add up are an error, not an endless loop."""

from dataclasses import replace

import numpy as np
import pytest

from munirank.errors import InputError
from munirank.simulation.presets import NAMES, municipality_counts, preset


def test_every_named_preset_is_known():
    assert [preset(name).name for name in NAMES] == list(NAMES)


def test_small_municipalities_absorb_the_rest_of_the_total():
    p = preset("dk-1999-2005")
    counts = municipality_counts(p, np.random.default_rng(1))
    assert counts.sum() == p.total and len(counts) == len(p.named_counts) + p.n_small


@pytest.mark.parametrize("n_small", [28, 5000])
def test_a_total_the_small_municipalities_cannot_hold_is_one_line(n_small):
    """28 small ones cannot hold dk's rest (bench --scale-municipalities 100 hung here)."""
    p = replace(preset("dk-1999-2005"), n_small=n_small)
    with pytest.raises(InputError, match=f"cannot be spread over {n_small} small municipalities"):
        municipality_counts(p, np.random.default_rng(1))
