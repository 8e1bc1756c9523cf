r"""The cumulative hazards of K outcomes on the same episodes, one Op (competing outcomes).

.. math::

    C = \sum_k \Big[\sum_i e^{\eta_{ik} + \alpha_k \log t_i}
        - \sum_{i:\, s_i > 0} e^{\eta_{ik} + \alpha_k \log s_i}\Big],
    \qquad \eta_{ik} = a_{m(i)k} + x_i^\top w_k,

with its gradient with respect to a (K x segments), the coefficients (K x covariates) and the
shapes (K). Each outcome is one pass of the single-outcome kernel
(:mod:`munirank.model.kernel`: :func:`~munirank.model.kernel._blocks`, the same data, the
same arithmetic), all K in one Op. One Op rather than K calls of the single-outcome Op on
slices of the parameters: the slices and their gradients (28 Subtensor and 25 IncSubtensor
nodes for two outcomes) made the rest of the graph cost as much as a third kernel call
(measured on dk-outcomes: 0.56 ms per log density and gradient against 0.24 ms for the
single outcome; the kernel itself is about 0.2 ms per outcome).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numba
import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Apply
from pytensor.link.numba.dispatch.basic import register_funcify_default_op_cache_key

from munirank.model import kernel
from munirank.model.kernel import FASTMATH, _add_columns, _blocks, _column_sums, _unpack


@numba.njit(fastmath=FASTMATH)
def _hazards(a, beta, alpha, x_small, x_real, pattern, table, floats, layout):  # noqa: ANN001, ANN201, PLR0913
    """Value and gradient of the summed cumulative hazards of K outcomes (module docstring).

    ``a`` (K, segments), ``beta`` (K, covariates), ``alpha`` (K). Returns ``(C, dC/da,
    dC/dbeta, dC/dalpha)``, per outcome exactly what
    :func:`munirank.model.kernel.cumulative_hazard_kernel` computes.
    """
    small, real, in_pattern, seg_start, seg_m, log_t, log_s, centre, scale = _unpack(
        floats, layout)
    n_out = a.shape[0]
    g_a = np.zeros(a.shape)
    g_beta = np.zeros(beta.shape)
    g_alpha = np.zeros(n_out)
    value = 0.0
    for k in range(n_out):
        bk = beta[k]
        w_small = bk[small] / scale[small]
        w_pattern = bk[in_pattern] / scale[in_pattern]
        offset = -(w_small * centre[small]).sum() - (w_pattern * centre[in_pattern]).sum()
        c = np.zeros(table.shape[1])
        _add_columns(c, table, w_pattern, 0, c.shape[0])
        total, ga, g_small, g_real, g_c, gal = _blocks(
            a[k] + offset, w_small, bk[real], c, alpha[k], x_small, x_real, pattern, log_t,
            log_s, seg_start, seg_m)
        value += total
        g_a[k] = ga
        g_alpha[k] = gal
        g_beta[k, small] = (g_small - total * centre[small]) / scale[small]
        g_pattern = np.zeros(table.shape[0])
        _column_sums(g_pattern, g_c, table, 0, g_c.shape[0])
        g_beta[k, in_pattern] = (g_pattern - total * centre[in_pattern]) / scale[in_pattern]
        g_beta[k, real] = g_real
    return np.array(value), g_a, g_beta, g_alpha


SOURCE_VERSION = int(hashlib.sha256(Path(__file__).read_bytes()
                                    + str(kernel.SOURCE_VERSION).encode()).hexdigest()[:15], 16)
"""This module's and the kernel's source: part of PyTensor's cache key (as in model.kernel)
and of numba's, whose cache of a function follows its own file only, not the kernel's
helpers it calls (as :mod:`munirank.model.family_kernel`'s factories)."""


def _compile(key: int):  # noqa: ANN202
    @numba.njit(fastmath=FASTMATH, cache=True)
    def cumulative_hazards_kernel(a, beta, alpha, x_small, x_real, pattern, table, floats,  # noqa: ANN001, ANN202, PLR0913
                                  layout):
        """:func:`_hazards`; ``key`` is in numba's cache index (closure variables are)."""
        _ = key
        return _hazards(a, beta, alpha, x_small, x_real, pattern, table, floats, layout)

    return cumulative_hazards_kernel


cumulative_hazards_kernel = _compile(SOURCE_VERSION)


class CumulativeHazards(kernel.CumulativeHazard):
    """PyTensor Op: (a, beta, alpha, *HazardData arrays) -> C and its gradient, K outcomes.

    The outputs are C, dC/da, dC/dbeta and dC/dalpha with a row per outcome; the gradient
    (first derivatives only) as for :class:`munirank.model.kernel.CumulativeHazard`.
    """

    def make_node(self, *inputs):  # noqa: ANN002, ANN201, D102
        a, beta, alpha, *data = [pt.as_tensor_variable(v) for v in inputs]
        outputs = [pt.dscalar(), pt.dmatrix(), pt.dmatrix(), pt.dvector()]
        return Apply(self, [a, beta, alpha, *data], outputs)

    def perform(self, node, inputs, output_storage):  # noqa: ANN001, ANN201, D102
        a, beta, alpha, *data = inputs
        results = cumulative_hazards_kernel(np.ascontiguousarray(a, float),
                                            np.ascontiguousarray(beta, float),
                                            np.asarray(alpha, float), *data)
        for storage, value in zip(output_storage, results, strict=True):
            storage[0] = np.asarray(value)


cumulative_hazards_op = CumulativeHazards()


@register_funcify_default_op_cache_key(CumulativeHazards)
def _numba_cumulative_hazards(op, node, **kwargs):  # noqa: ANN001, ANN003, ANN202
    return cumulative_hazards_kernel, SOURCE_VERSION


def cumulative_hazards(a: pt.TensorVariable, beta: pt.TensorVariable,
                       alpha: pt.TensorVariable,
                       data: list[pt.TensorVariable]) -> pt.TensorVariable:
    """The summed cumulative hazards C of K outcomes as a PyTensor scalar.

    ``a`` (K, segments): each outcome's per-municipality part of the linear predictor;
    ``beta`` (K, covariates); ``alpha`` (K); ``data`` from
    :func:`munirank.model.kernel.shared_inputs`.
    """
    return cumulative_hazards_op(a, beta, alpha, *data)[0]
