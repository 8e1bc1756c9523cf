"""Simulated registers with competing outcomes: table 1's split, the truth, the files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from munirank.cli import run
from munirank.errors import InputError
from munirank.simulation.outcomes import TABLE1_SHARES, simulate_outcome_register
from munirank.simulation.presets import akf_counts


@pytest.mark.parametrize("seed", [1, 2])
def test_dk_outcomes_reproduces_table1_split(seed):
    tables = simulate_outcome_register("dk-outcomes", seed)
    spells = tables["spells"]
    assert len(spells) == 23_563
    shares = spells["outcome"].value_counts() / len(spells)
    for label, target in TABLE1_SHARES.items():
        assert shares[label] == pytest.approx(target, abs=0.01)
    counts = spells.groupby("municipality").size()
    for name, n in akf_counts()[:10]:
        assert counts[name] == n
    # censored rows have no outcome, events have one
    assert spells.loc[spells["event"] == 0, "outcome"].isna().all()
    assert spells.loc[spells["event"] == 1, "outcome"].notna().all()


def test_truth_combined_is_sum_of_outcomes():
    tables = simulate_outcome_register("tiny-outcomes", 3)
    per = tables["truth_outcomes"].pivot(index="municipality", columns="outcome",
                                         values="true_effect_months")
    truth = tables["truth"].set_index("municipality")
    assert np.allclose(per.sum(axis=1).loc[truth.index], truth["true_effect_months"])
    # the effect follows the true log hazard ratio of its outcome (more events: faster)
    for label, part in tables["truth_outcomes"].groupby("outcome"):
        rho = pd.Series(part["true_log_hr"].to_numpy()).corr(
            pd.Series(part["true_effect_months"].to_numpy()), method="spearman")
        assert rho < -0.8, label


def test_simulate_writes_the_outcome_spec(tmp_path):
    from munirank.input.spec import load_spec

    out = tmp_path / "sim"
    assert run(["simulate", "--preset", "tiny-outcomes", "--out", str(out)]) == 0
    spec = load_spec(out / "spec.toml")
    assert spec.data.outcome == "outcome" and spec.data.outcomes == ("job", "education")
    assert {"truth.csv", "truth_outcomes.csv", "spells.csv"} <= {p.name for p in out.iterdir()}


def test_outcome_presets_take_scale_only(tmp_path):
    from munirank.simulation.register import write_register

    with pytest.raises(InputError, match="--effect-sd"):
        write_register("tiny-outcomes", 1, tmp_path, effect_sd=0.2)
