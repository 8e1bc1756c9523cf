"""The K-outcome cumulative-hazard Op equals K calls of the single-outcome kernel."""

from __future__ import annotations

import numpy as np

from munirank.input.episodes import as_codes
from munirank.model.build import _log_or_minus_inf, time_scale
from munirank.model.hazards import cumulative_hazards_kernel
from munirank.model.kernel import cumulative_hazard_kernel, hazard_data


def test_each_outcome_is_the_single_kernel(outcome_episodes):
    ep = outcome_episodes
    scale = time_scale(ep)
    t, s = ep["exit"].to_numpy() / scale, ep["entry"].to_numpy() / scale
    data = hazard_data(ep["x"].to_numpy(), ep["x_centre"].to_numpy(), ep["x_scale"].to_numpy(),
                       as_codes(ep), np.log(t), _log_or_minus_inf(s)).arrays()
    rng = np.random.default_rng(2)
    k, m, p = 3, ep.sizes["municipality"], ep.sizes["covariate"]
    a, beta, alpha = rng.normal(-1, 0.5, (k, m)), rng.normal(0, 0.3, (k, p)), rng.uniform(
        0.7, 1.4, k)
    value, g_a, g_beta, g_alpha = cumulative_hazards_kernel(a, beta, alpha, *data)
    total = 0.0
    for j in range(k):
        c, ga, gb, gal = cumulative_hazard_kernel(a[j], beta[j], np.asarray(alpha[j]), *data)
        total += float(c)
        np.testing.assert_allclose(g_a[j], ga, rtol=1e-12)
        np.testing.assert_allclose(g_beta[j], gb, rtol=1e-12, atol=1e-12)
        assert g_alpha[j] == float(gal)
    assert float(value) == total
