"""Chain processes of PyMC's sampler (issue 28: `study --sampler pymc` in a dask worker)."""

import multiprocessing
import os
from types import SimpleNamespace

from munirank.model import sampling


def test_chains_run_in_one_process_per_core_at_most():
    assert sampling._chain_processes(1) == 1
    assert sampling._chain_processes(10**6) == (os.cpu_count() or 1)


def test_a_daemonic_process_starts_no_chain_processes(monkeypatch):
    """A dask worker is daemonic; PyMC's chain processes there failed every replicate."""
    monkeypatch.setattr(multiprocessing, "current_process", lambda: SimpleNamespace(daemon=True))
    assert sampling._chain_processes(4) == 1
