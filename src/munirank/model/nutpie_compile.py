"""nutpie's compiled model, with C callbacks that numba caches across processes.

nutpie (0.16) compiles a PyMC model in two steps: PyTensor compiles the log density, its
gradient and the "expand" function (constrained values of the draws) with numba, and nutpie
then wraps each in a numba ``cfunc`` that the Rust sampler calls. PyTensor caches its part on
disk; nutpie's wrappers cannot be cached (they close over the model's data) and took 12 s of
the 13.8 s of compilation of ``dk-1999-2005`` in every new process (measured with numba's
compile events: 4.7 s of it compiles the error message of one slice assignment, about 3 s the
per-array extraction of the shared data, the rest typing and LLVM).

Here the wrappers are written as source text that depends only on the PyTensor function's own
cache key and on the dtype and number of dimensions of each shared array, so numba caches them
in PyTensor's cache folder (with PyTensor's own cache locator). The data reach them through
one int64 array of pointers and shapes, as nutpie's own record of shared data does. They
compute exactly what nutpie's do (same inputs, same outputs, same return codes); the test
``tests/test_nutpie_model.py`` compares the two on a model. If anything here does not apply
(a nutpie or PyTensor version with other internals, or a graph PyTensor does not cache), the
model is compiled by ``nutpie.compile_pymc_model`` instead.

The returned model samples like nutpie's own; its ``with_data`` is not supported (nutpie's
record of shared data is replaced by the pointer table; munirank builds a new model instead,
which compiles from the cache). This module uses nutpie's private functions
(``_make_functions``, ``_prepare_dims_and_coords``, ``CompiledPyMCModel``); pyproject.toml
pins nutpie to the minor version it was written for.
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

VERSION = "2"
"""Part of every cache key (with the generated source itself): bump it when the callbacks
change in a way their source text does not show, e.g. the globals they are compiled with."""


@dataclass(frozen=True)
class _Layout:
    """Where each shared array's pointer and shape sit in the int64 ``user_data`` array."""

    offsets: tuple[int, ...]
    ndims: tuple[int, ...]
    dtypes: tuple[str, ...]
    length: int


def _layout(arrays: list[np.ndarray]) -> _Layout:
    offsets, o = [], 2  # user_data[0] = n_dim, user_data[1] = n_expanded
    for a in arrays:
        offsets.append(o)
        o += 1 + a.ndim
    return _Layout(tuple(offsets), tuple(a.ndim for a in arrays),
                   tuple(a.dtype.name for a in arrays), o)


def _user_data(n_dim: int, n_expanded: int, arrays: list[np.ndarray],
               layout: _Layout) -> np.ndarray:
    ud = np.zeros(layout.length, np.int64)
    ud[0], ud[1] = n_dim, n_expanded
    for a, o in zip(arrays, layout.offsets, strict=True):
        ud[o] = a.ctypes.data
        ud[o + 1:o + 1 + a.ndim] = a.shape
    return ud


def _array_lines(indices: list[int], layout: _Layout) -> tuple[list[str], list[str]]:
    """Source lines that view shared array k of ``user_data`` as a numpy array ``s_k``."""
    lines, names = [], []
    for k in indices:
        o, nd, dt = layout.offsets[k], layout.ndims[k], layout.dtypes[k]
        shape = "(" + "".join(f"ud[{o + 1 + j}], " for j in range(nd)) + ")"
        lines.append(f"    s_{k} = numba.carray(_void_ptr(ud[{o}]), {shape}, np.{dt})")
        names.append(f"s_{k}")
    return lines, names


def _wrapper_source(head: str, check: str, body: list[str], on_error: int,
                    indices: list[int], layout: _Layout) -> str:
    """A callback: check the sizes, view the shared arrays, call ``inner`` in ``body``."""
    lines, names = _array_lines(indices, layout)
    call = f"inner({', '.join(['x', *names])})"
    return "\n".join([
        head,
        f"    ud = numba.carray(user_data_, ({layout.length},), np.int64)",
        f"    if {check}:",
        "        return -1",
        *lines,
        "    try:",
        *("        " + line.replace("CALL", call) for line in body),
        "    except Exception:",
        f"        return {on_error}",
        "    return 0",
    ])


def _logp_source(indices: list[int], layout: _Layout) -> str:
    # element loops instead of nutpie's `out[...] = grad` and `np.all(np.isfinite(out))`:
    # the same values, without numba compiling a shape-mismatch error message (4.7 s)
    return _wrapper_source(
        "def logp_wrapper(dim, x_, out_, logp_, user_data_):", "dim != ud[0]",
        ["x = numba.carray(x_, (dim,))", "out = numba.carray(out_, (dim,))",
         "logp_val, grad = CALL", "logp_[0] = logp_val", "finite = True",
         "for i in range(dim):", "    out[i] = grad[i]",
         "    finite = finite and np.isfinite(grad[i])", "if not finite:", "    return 3",
         "if not np.isfinite(logp_val):", "    return 4"],
        1, indices, layout)


def _expand_source(indices: list[int], layout: _Layout) -> str:
    return _wrapper_source(
        "def expand_wrapper(dim, expanded, x_, out_, user_data_):",
        "dim != ud[0] or expanded != ud[1]",
        ["x = numba.carray(x_, (dim,))", "out = numba.carray(out_, (expanded,))",
         "(values,) = CALL", "for i in range(expanded):", "    out[i] = values[i]"],
        -2, indices, layout)


def _void_ptr_intrinsic() -> Any:
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    @intrinsic
    def _void_ptr(typingctx, src):  # noqa: ANN001, ANN202
        """The address (an int64) as a void pointer."""
        def codegen(cgctx, builder, sig, args):  # noqa: ANN001, ANN202
            return builder.inttoptr(args[0], cgutils.voidptr_t)
        return types.voidptr(src), codegen

    return _void_ptr


_VOID_PTR = None


def _cached_cfunc(source: str, name: str, inner: Any, signature: Any, key: str) -> Any:
    """``numba.cfunc(signature, cache=True)`` of the generated source, cached under ``key``."""
    import numba
    from pytensor.link.numba.cache import compile_numba_function_src

    global _VOID_PTR
    if _VOID_PTR is None:
        _VOID_PTR = _void_ptr_intrinsic()
    # __name__: numba rebuilds a cached function's environment by importing its module
    env = {"numba": numba, "np": np, "inner": inner, "_void_ptr": _VOID_PTR,
           "__name__": __name__}
    fn = compile_numba_function_src(source, name, env, cache_key=key)
    with warnings.catch_warnings():
        # a callback numba cannot cache would be compiled anew in every process: fall back
        warnings.filterwarnings("error", message="Cannot cache", category=numba.NumbaWarning)
        return numba.cfunc(signature, cache=True)(fn)


def _pytensor_key(jit_fn: Any) -> str | None:
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS

    return CACHED_SRC_FUNCTIONS.get(getattr(jit_fn, "py_func", None))


def compile_model(model: Any, var_names: list[str] | None = None) -> Any:
    """A ``nutpie.CompiledPyMCModel`` of ``model`` whose C callbacks numba caches.

    Parameters
    ----------
    model : pymc.Model
    var_names : list of str, optional
        Variables to keep in the trace (default: all).

    Returns
    -------
    nutpie.compile_pymc.CompiledPyMCModel
        Samples like ``nutpie.compile_pymc_model(model, var_names=var_names)``, the same
        log density and gradient (falls back to that function where the cache does not apply).
    """
    import pytensor

    nutpie = import_nutpie()

    # no stack trace recorded on each of the thousands of nodes the rewrites create: they
    # would only point error messages at munirank's own model code (0.59-0.66 against
    # 0.70-0.72 s of CPU for a compilation, dk-1999-2005; the same compiled functions)
    with _cyclic_gc_paused(), pytensor.config.change_flags(traceback__limit=0):
        try:
            return _compile(model, var_names)
        except (AttributeError, ImportError, TypeError, KeyError, _NotCacheable, Warning) as err:
            log.info("nutpie's own compilation (the cached callbacks do not apply: %s)", err)
            return nutpie.compile_pymc_model(model, var_names=var_names)


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Python's cyclic garbage collector off while PyTensor rewrites and links the graphs.

    Rewriting allocates many small objects, which sets off collections that each scan the
    whole heap (the register's data included). Measured on dk-1999-2005 with warm caches, the
    first compilation in each of two fresh processes: 1.25 and 1.33 s with the collector off,
    1.55 and 2.04 s with it on (the second and third in the same process: 0.98-1.06 s against
    1.02-1.96 s). Reference counting still frees everything without cycles meanwhile; the
    collector runs again afterwards.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class _NotCacheable(Exception):
    pass


def _compile(model: Any, var_names: list[str] | None) -> Any:
    import numba
    from nutpie import compile_pymc as ncp
    from pymc.initial_point import make_initial_point_fn

    initial_point_fn = ncp._wrap_with_lock(make_initial_point_fn(
        model=model, overrides=None, default_strategy="support_point",
        jitter_rvs=set(model.free_RVs), return_transformed=True))
    (n_dim, n_expanded, logp_fn_pt, expand_fn_pt, initial_point_fn, shape_info,
     reparameterized_names) = ncp._make_functions(
        model, mode="NUMBA", compute_grad=True, join_expanded=True,
        pymc_initial_point_fn=initial_point_fn, var_names=var_names)
    logp_inner, expand_inner = logp_fn_pt.vm.jit_fn, expand_fn_pt.vm.jit_fn
    keys = _pytensor_key(logp_inner), _pytensor_key(expand_inner)
    if None in keys:
        raise _NotCacheable("PyTensor did not cache the log density or expand function")

    shared_vars: list[Any] = []
    for var in [*logp_fn_pt.get_shared(), *expand_fn_pt.get_shared()]:
        if var not in shared_vars:
            shared_vars.append(var)
    arrays = [np.array(v.get_value(), order="C", copy=True) for v in shared_vars]
    for a in arrays:
        a.flags.writeable = False
    layout = _layout(arrays)
    logp_idx = [shared_vars.index(v) for v in logp_fn_pt.get_shared()]
    expand_idx = [shared_vars.index(v) for v in expand_fn_pt.get_shared()]

    sig_logp = numba.types.int64(numba.types.uint64, numba.types.CPointer(numba.types.double),
                                 numba.types.CPointer(numba.types.double),
                                 numba.types.CPointer(numba.types.double), numba.types.voidptr)
    sig_expand = numba.types.int64(numba.types.uint64, numba.types.uint64,
                                   numba.types.CPointer(numba.types.double),
                                   numba.types.CPointer(numba.types.double),
                                   numba.types.voidptr)
    src_logp, src_expand = _logp_source(logp_idx, layout), _expand_source(expand_idx, layout)
    logp_c = _cached_cfunc(src_logp, "logp_wrapper", logp_inner, sig_logp,
                           _key(keys[0], src_logp))
    expand_c = _cached_cfunc(src_expand, "expand_wrapper", expand_inner, sig_expand,
                             _key(keys[1], src_expand))

    dims, coords = ncp._prepare_dims_and_coords(model, shape_info, reparameterized_names)
    keys_by_var = {v: f"s_{k}" for k, v in enumerate(shared_vars)}
    return ncp.CompiledPyMCModel(
        _n_dim=n_dim, dims=dims, _coords=coords,
        _shapes={name: tuple(shape) for name, _, shape in zip(*shape_info, strict=True)},
        compiled_logp_func=logp_c, compiled_expand_func=expand_c,
        initial_point_func=initial_point_fn,
        shared_data={keys_by_var[v]: a for v, a in zip(shared_vars, arrays, strict=True)},
        shared_var_keys=keys_by_var,
        user_data=_user_data(n_dim, n_expanded, arrays, layout),
        n_expanded=n_expanded, shape_info=shape_info, logp_func=logp_fn_pt,
        expand_func=expand_fn_pt, reparameterized_names=reparameterized_names)


def _key(inner_key: str, source: str) -> str:
    import numba

    text = "\n".join(["munirank.model.nutpie_compile", VERSION, numba.__version__,
                      inner_key, source])
    return hashlib.sha256(text.encode()).hexdigest()


def import_nutpie() -> Any:
    """``import nutpie`` without importing all of arviz.

    nutpie 0.16's ``sample.py`` does ``import arviz`` and then uses only ``arviz.from_dict``
    and ``arviz.dict_to_dataset``, both arviz_base's; the whole of arviz also imports
    arviz_stats (scipy.stats, xarray_einstats) and arviz_plots (matplotlib): 2.0 of the 3.9 s of
    CPU that importing PyMC and nutpie took (measured). A stand-in module holding those two
    functions is in ``sys.modules`` only while nutpie is imported, so a later ``import arviz``
    anywhere still gets the real package. nutpie's minor version is pinned for this
    (pyproject.toml); a newer nutpie that uses more of arviz fails the tests that sample.
    """
    import sys
    import types

    if "nutpie" in sys.modules or "arviz" in sys.modules:  # nothing to save
        import nutpie

        return nutpie
    import arviz_base

    stand_in = types.ModuleType("arviz")
    stand_in.from_dict = arviz_base.from_dict  # type: ignore[attr-defined]
    stand_in.dict_to_dataset = arviz_base.dict_to_dataset  # type: ignore[attr-defined]
    sys.modules["arviz"] = stand_in
    try:
        import nutpie
    finally:
        sys.modules.pop("arviz", None)
    return nutpie
