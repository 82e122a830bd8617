"""Dask clients for :mod:`xcebra.parallel`: a local cluster for one call, the threads and allocator of a worker
process, and a progress bar over tasks.

``distributed`` is an optional dependency (``pip install "xcebra[dask]"``): it is imported when a cluster
starts or a task runs, never at ``import xcebra``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

__all__ = ["local_client", "client_or_local", "worker_threads", "set_task_threads", "task_progress"]

_DASK_HINT = 'xcebra.parallel needs the optional dependency dask.distributed: pip install "xcebra[dask]"'


def _distributed():
    try:
        import distributed
    except ModuleNotFoundError as error:  # pragma: no cover - the extra is installed in tests
        raise ImportError(_DASK_HINT) from error
    return distributed


@contextlib.contextmanager
def local_client(n_workers: int | None = None, threads_per_worker: int = 1) -> Iterator[Any]:
    """A ``distributed.Client`` on a local cluster of worker processes, closed on exit.

    Parameters
    ----------
    n_workers : int, optional
        Worker processes; default: one per core (``os.cpu_count()``).
    threads_per_worker : int, default 1
        Each task sets ``torch.set_num_threads`` to this (unless the estimator sets ``num_threads``).

    The scheduler and workers listen on 127.0.0.1 only, and no dashboard is started. Worker processes
    are spawned: in a script, call this (or any function of this module without ``client``) under
    ``if __name__ == "__main__":``.
    """
    import dask

    distributed = _distributed()
    n_workers = n_workers or os.cpu_count() or 1
    # The workers' statistical profiler samples every thread's stack every 10 ms, holding the GIL: it cost
    # 10% of a small-MLP training step here (27.0 against 24.6 ms per step), and nobody reads its output.
    # The scheduler's HTTP server (health routes) always starts: on a free loopback port, without the dashboard.
    with dask.config.set({"distributed.worker.profile.enabled": False}):
        cluster = distributed.LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker,
                                           processes=True, host="127.0.0.1", dashboard_address="127.0.0.1:0",
                                           worker_dashboard_address=None, scheduler_port=0,
                                           scheduler_kwargs={"dashboard": False}, silence_logs=logging.ERROR)
    try:
        with distributed.Client(cluster) as client:
            yield client
    finally:
        cluster.close()


@contextlib.contextmanager
def client_or_local(client: Any) -> Iterator[Any]:
    if client is not None:
        yield client
    else:
        with local_client() as local:
            yield local


def worker_threads() -> int:
    """Threads of the Dask worker running this task (1 outside a worker)."""
    try:
        from distributed import get_worker
        worker = get_worker()
    except (ImportError, ValueError):
        return 1
    state = getattr(worker, "state", worker)
    return max(1, int(getattr(state, "nthreads", 1)))


def set_task_threads(num_threads: int | None) -> None:
    """Prepare this worker process for a task: torch threads, and the allocator (see below)."""
    torch.set_num_threads(num_threads if num_threads is not None else worker_threads())
    _restore_allocator_thresholds()


def _restore_allocator_thresholds() -> None:
    """Undo the effect of ``MALLOC_TRIM_THRESHOLD_`` on glibc's allocator in this process.

    Dask's nanny starts workers with ``MALLOC_TRIM_THRESHOLD_=65536`` (to hand memory back to the OS
    sooner). Setting it switches off glibc's dynamic mmap threshold, so every allocation above 128 KiB (most
    activations and gradients of a training step) becomes a fresh ``mmap`` and page faults again: training
    steps of the small MLP setting ran 2x slower in workers than in a plain process (measured here: 15.5 ms
    against 8.5 ms for the same ops). Large thresholds let freed blocks be reused, as in a plain process.
    """
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ or not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (e.g. musl): nothing to restore
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_mmap_threshold, 64 << 20)
    libc.mallopt(m_trim_threshold, 128 << 20)


def task_progress(futures: Sequence[Any], verbose: bool, desc: str) -> None:
    """Wait for ``futures`` with a progress bar (errors are collected by the caller)."""
    from distributed import as_completed  # optional dependency: imported when tasks run

    with tqdm(total=len(futures), disable=not verbose, desc=desc, unit="task", dynamic_ncols=True) as bar:
        for _ in as_completed(futures):
            bar.update(1)
