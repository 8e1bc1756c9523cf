"""LOO of competing outcomes against the single-outcome model with constant cause shares."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import fake_outcome_posterior, fake_posterior
from munirank.checking.outcome_loo import (
    outcome_loo_table,
    outcome_pointwise_loglik,
    single_with_shares_loglik,
    without_outcomes,
)
from munirank.model.build import pointwise_loglik


def test_identical_halves_are_the_single_model_plus_log_half(outcome_episodes):
    """Two outcomes with the same hazard, each half the single one: the event's log 1/2."""
    single = fake_posterior(without_outcomes(outcome_episodes), draws=5)
    both = fake_outcome_posterior(outcome_episodes, draws=5)
    for name in ("alpha", "beta", "gamma"):
        both[name] = single[name].expand_dims(outcome=both["outcome"]).transpose(
            *both[name].dims)
    both["beta0"] = (single["beta0"] - np.log(2)).expand_dims(outcome=both["outcome"]).transpose(
        *both["beta0"].dims)
    both["u"] = single["u"].expand_dims(outcome=both["outcome"]).transpose(*both["u"].dims)
    event = (outcome_episodes["episode_outcome"] >= 0).to_numpy()
    expected = pointwise_loglik(single, without_outcomes(outcome_episodes)) + event * np.log(0.5)
    got = outcome_pointwise_loglik(both, outcome_episodes)
    assert np.allclose(got.to_numpy(), expected.to_numpy())


def test_shares_add_the_log_share_of_each_event(outcome_episodes):
    single = fake_posterior(without_outcomes(outcome_episodes), draws=5)
    plain = pointwise_loglik(single, outcome_episodes)
    with_shares = single_with_shares_loglik(single, outcome_episodes)
    diff = (with_shares - plain).to_numpy()
    event = (outcome_episodes["episode_outcome"] >= 0).to_numpy()
    assert np.all(diff[..., ~event] == 0) and np.all(diff[..., event] < 0)
    # the rare outcome costs more than the frequent one
    code = outcome_episodes["episode_outcome"].to_numpy()
    assert diff[..., code == 1].mean() < diff[..., code == 0].mean()


@pytest.mark.slow
def test_competing_outcomes_beat_constant_shares_by_loo(outcomes_dir):
    from munirank.input.spec import load_spec
    from munirank.model.build import create_model
    from munirank.model.sampling import sample_posterior

    spec = load_spec(outcomes_dir / "spec.toml").with_sampling(draws=300, chains=2)
    from munirank.input.episodes import load_episodes

    episodes = load_episodes(outcomes_dir / "spells.csv", spec)
    trees = [sample_posterior(create_model(ep, spec.model), spec.sampling,
                              progressbar=False)[0]["posterior"].dataset
             for ep in (episodes, without_outcomes(episodes))]
    table = outcome_loo_table(trees[0], trees[1], episodes)
    assert table["model"].tolist()[0] == "competing_outcomes"
    # the single-outcome model is far behind (arviz-stats signs the difference to the best)
    assert abs(table["elpd_diff"].iloc[1]) > 4 * table["dse"].iloc[1]
