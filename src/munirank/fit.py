"""Posterior computation: the only module that calls ``pm.sample``.

Returns the posterior as an ``xarray.DataTree`` with groups ``posterior`` (parameters,
dims chain, draw, ...) and ``sample_stats``. Methods:

- ``nuts`` (default): nutpie (default sampler), PyMC's own NUTS (``sampler="pymc"``) or
  numpyro (needs JAX);
- ``laplace``: a Gaussian approximation at the posterior mode on the unconstrained scale
  (:func:`laplace_posterior`), for registers too large to refit often with NUTS. Its draws
  are independent; validate it against NUTS on the same data (``munirank bench``).
- ``pathfinder`` is reserved: the pymc-extras implementation does not install beside
  PyMC 6.4 (it requires pymc < 6.4), so the spec check refuses it with a clear message.
"""

from __future__ import annotations

import os
import time

import numpy as np
import pymc as pm
import pytensor
import xarray as xr
from pymc.pytensorf import join_nonshared_inputs
from scipy import optimize
from threadpoolctl import threadpool_limits

from munirank.model import PARAMETERS
from munirank.spec import SamplingSpec


def sample_posterior(model: pm.Model, spec: SamplingSpec, *, progressbar: bool = True,
                     var_names: list[str] | None = None) -> tuple[xr.DataTree, dict[str, float]]:
    """Draw from the posterior of ``model``.

    Parameters
    ----------
    model : pymc.Model
        Built by :func:`munirank.model.create_model` (or another munirank model factory).
    spec : SamplingSpec
        Draws, tuning steps, chains, sampler, method, seed and target acceptance.
    progressbar : bool
        Show sampling progress.
    var_names : list of str, optional
        Variables to keep; default: the model's reported parameters (:data:`PARAMETERS`).

    Returns
    -------
    tree : xarray.DataTree
        Groups ``posterior`` and ``sample_stats``.
    timings : dict
        ``sampling_seconds`` (wall time, compilation included), ``compile_seconds`` and
        ``draw_seconds`` (the sampler's own time for tuning and draws).

    Raises
    ------
    ImportError
        If the sampler's optional dependency (numpyro/JAX) is not installed.
    """
    if var_names is None:
        var_names = [v for v in PARAMETERS if v in model.named_vars]
    # One BLAS thread: the sampler already runs one chain per core, and OpenBLAS threads
    # fighting over the same cores made each gradient (a matrix-vector product) 40x slower
    # (32 ms -> 0.8 ms per x @ beta and its gradient on dk-1999-2005, measured).
    with threadpool_limits(limits=1, user_api="blas"):
        return _sample(model, spec, progressbar=progressbar, var_names=var_names)


def _sample(model: pm.Model, spec: SamplingSpec, *, progressbar: bool,
            var_names: list[str]) -> tuple[xr.DataTree, dict[str, float]]:
    if spec.method == "laplace":
        return laplace_posterior(model, spec, var_names=var_names)
    if spec.method != "nuts":
        raise NotImplementedError(f"method {spec.method!r} is not available; use nuts or laplace")
    if spec.sampler == "numpyro":
        try:
            import numpyro  # noqa: F401
        except ImportError as err:
            raise ImportError("sampler 'numpyro' needs JAX: pip install numpyro jax") from err
    t0 = time.perf_counter()
    with model:
        tree = pm.sample(
            draws=spec.draws, tune=spec.tune, chains=spec.chains,
            cores=min(spec.chains, os.cpu_count() or 1), random_seed=spec.seed,
            nuts_sampler=spec.sampler, target_accept=spec.target_accept,
            progressbar=progressbar, var_names=var_names, compute_convergence_checks=False,
        )
    wall = time.perf_counter() - t0
    drawing = float(tree["posterior"].attrs.get("sampling_time", wall))
    return tree, {"sampling_seconds": wall, "compile_seconds": max(wall - drawing, 0.0),
                  "draw_seconds": drawing}


def laplace_posterior(model: pm.Model, spec: SamplingSpec, *,
                      var_names: list[str]) -> tuple[xr.DataTree, dict[str, float]]:
    """Gaussian (Laplace) approximation at the mode of the unconstrained posterior.

    Written here because PyMC 6.4 has no Laplace approximation and pymc-extras (which has
    one) requires pymc < 6.4. The log density includes the Jacobians of the transforms
    (``sigma`` and ``alpha`` on the log scale), so the mode and curvature are those of the
    density the draws are taken from; the draws are mapped back through the model's own
    transforms, so deterministics (``u = sigma * u_raw``) are exact functions of each draw.

    The Hessian is taken by central differences of the exact (autodiff) gradient: ``2n``
    gradient evaluations for ``n`` parameters (a few hundred here) cost far less than
    compiling a symbolic Hessian of the per-episode likelihood, and are accurate to about
    1e-7 relative.

    Parameters
    ----------
    model : pymc.Model
        The model.
    spec : SamplingSpec
        ``chains * draws`` independent draws are taken, arranged as chains for the
        diagnostics; ``seed`` fixes them.
    var_names : list of str
        Variables to keep.

    Returns
    -------
    tree : xarray.DataTree
        ``posterior`` and ``sample_stats`` (``diverging`` all false; ``laplace_*`` attrs
        record the optimiser's result: ``laplace_converged`` is false when the optimiser
        failed or the curvature is not positive definite).
    timings : dict
        ``compile_seconds``, ``optimise_seconds``, ``hessian_seconds``, ``draw_seconds``,
        ``sampling_seconds`` (their sum).
    """
    t0 = time.perf_counter()
    ip = model.initial_point()
    value_vars = model.value_vars
    logp = model.logp(jacobian=True)
    grad = pytensor.grad(logp, value_vars)
    grad_flat = pytensor.tensor.concatenate([g.ravel() for g in grad])
    (logp_j, grad_j), flat = join_nonshared_inputs(ip, [logp, grad_flat], value_vars)
    logp_dlogp = pytensor.function([flat], [logp_j, grad_j])
    outputs = model.unobserved_value_vars
    names = [v.name for v in outputs]
    keep = [i for i, n in enumerate(names) if n in var_names]
    [*outs_j], flat_out = join_nonshared_inputs(ip, [outputs[i] for i in keep], value_vars)
    expand = pytensor.function([flat_out], outs_j)
    x0 = np.concatenate([np.asarray(ip[v.name], float).ravel() for v in value_vars])
    t1 = time.perf_counter()

    def neg(x: np.ndarray) -> tuple[float, np.ndarray]:
        lp, g = logp_dlogp(x)
        return -float(lp), -np.asarray(g, float)

    res = optimize.minimize(neg, x0, jac=True, method="L-BFGS-B",
                            options={"maxiter": 20000, "maxcor": 30, "ftol": 1e-15,
                                     "gtol": 1e-9})
    mode = res.x
    t2 = time.perf_counter()
    hess = _hessian_from_gradient(lambda x: neg(x)[1], mode)
    t3 = time.perf_counter()
    try:
        chol = np.linalg.cholesky(hess)
        positive = True
    except np.linalg.LinAlgError:  # not positive definite: regularise, and flag the run
        positive = False
        w, v = np.linalg.eigh(hess)
        chol = np.linalg.cholesky((v * np.maximum(w, 1e-8)) @ v.T)
    rng = np.random.default_rng(spec.seed)
    n = spec.chains * spec.draws
    # x = mode + L^{-T} e has covariance (L L^T)^{-1} = H^{-1}
    eps = rng.standard_normal((len(mode), n))
    draws = mode[:, None] + np.linalg.solve(chol.T, eps)
    values = [expand(draws[:, j]) for j in range(n)]
    posterior = {}
    for k, i in enumerate(keep):
        name = names[i]
        arr = np.stack([np.asarray(v[k]) for v in values]).reshape(
            (spec.chains, spec.draws, *np.shape(values[0][k])))
        dims = ["chain", "draw", *model.named_vars_to_dims.get(name, ())]
        posterior[name] = (dims, arr)
    coords = {k: list(v) for k, v in model.coords.items() if v is not None}
    coords.update(chain=np.arange(spec.chains), draw=np.arange(spec.draws))
    ds = xr.Dataset(posterior, coords={k: v for k, v in coords.items()
                                       if any(k in d[0] for d in posterior.values())})
    gnorm = float(np.max(np.abs(res.jac)))
    ok = bool(positive and gnorm < 1e-3)
    t4 = time.perf_counter()
    ds.attrs.update(method="laplace", laplace_converged=int(ok),
                    laplace_max_abs_gradient=gnorm, laplace_iterations=int(res.nit),
                    laplace_positive_definite=int(positive), sampling_time=t4 - t3)
    stats = xr.Dataset({"diverging": (("chain", "draw"),
                                      np.zeros((spec.chains, spec.draws), bool))},
                       coords={"chain": ds["chain"], "draw": ds["draw"]})
    tree = xr.DataTree.from_dict({"posterior": ds, "sample_stats": stats})
    return tree, {"compile_seconds": t1 - t0, "optimise_seconds": t2 - t1,
                  "hessian_seconds": t3 - t2, "draw_seconds": t4 - t3,
                  "sampling_seconds": t4 - t0}


def _hessian_from_gradient(grad: object, x: np.ndarray, rel_step: float = 1e-5) -> np.ndarray:
    """Symmetrised central-difference Jacobian of ``grad`` (the negative log density's)."""
    n = len(x)
    hess = np.empty((n, n))
    for i in range(n):
        h = rel_step * max(1.0, abs(x[i]))
        e = np.zeros(n)
        e[i] = h
        hess[:, i] = (grad(x + e) - grad(x - e)) / (2 * h)  # type: ignore[operator]
    return 0.5 * (hess + hess.T)
