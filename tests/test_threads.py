"""One BLAS thread for the commands whose numba kernels bring their own (issue 29)."""

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from munirank.threads import one_blas_thread


def _blas_threads() -> list[int]:
    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]


def test_one_blas_thread_inside_and_the_caller_setting_restored_after():
    np.ones((2, 2)) @ np.ones((2, 2))  # BLAS loaded
    if not _blas_threads():
        pytest.skip("no BLAS library found by threadpoolctl")
    with threadpool_limits(limits=2, user_api="blas"):
        before = _blas_threads()

        @one_blas_thread
        def inside() -> list[int]:
            return _blas_threads()

        assert set(inside()) == {1}
        assert _blas_threads() == before
        with pytest.raises(ZeroDivisionError):  # restored after an exception too
            one_blas_thread(lambda: 1 / 0)()
        assert _blas_threads() == before


def test_the_commands_and_each_check_model_are_limited():
    from munirank.benchmark import fit
    from munirank.checking.alternatives import fit_variant, run_checks

    for func in (fit, run_checks, fit_variant):
        assert func.__wrapped__.__name__ == func.__name__


def test_importing_munirank_makes_openmps_idle_threads_sleep_unless_told_otherwise():
    import os
    import subprocess
    import sys

    code = "import os, munirank; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    got = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert got == "PASSIVE"
    got = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "active"},
                         capture_output=True, text=True, check=True).stdout.strip()
    assert got == "active"  # the user's own setting is kept
