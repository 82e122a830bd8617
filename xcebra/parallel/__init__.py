"""Scale-out on existing engines: many fits, sweeps and chunked attribution maps on Dask.

Nothing here schedules work itself: every function hands tasks to a ``distributed.Client``. Without
one, a local cluster of single-threaded worker processes (one per core, bound to 127.0.0.1, no
dashboard) is started for the call and closed after it. For a SLURM cluster create the client from
``dask_jobqueue.SLURMCluster`` and pass it (docs: how-to, "Scale out"); data given as file paths
is then read by the workers, so the paths must be visible from the compute nodes.

- :func:`fit_many`: one fit of a clone of an estimator per data set, each a Dask task; failed tasks
  are retried; every finished model is written atomically to ``out_dir`` under a name keyed by a hash
  of its data and parameters, so a rerun skips the jobs that are already done.
- :func:`sweep`: every configuration of a parameter grid, fitted on the training segments of
  time-series splits and scored on the held-out segments (InfoNCE loss per objective, decoding R2 per
  block).
- :func:`attribution_map`: time cut into chunks, each attributed by a worker that reads only its
  chunk's rows, reduced from exact float64 sums, so the result equals
  :meth:`xcebra.XCEBRA.attribution_map` (values and ``stderr``) to float round-off.

Data-parallel training of one model over processes (``torchrun``, ``srun``) is :mod:`xcebra.training.distributed`;
``XCEBRA.fit`` uses it by itself.

These functions need the ``dask`` extra: ``pip install "xcebra[dask]"``. Modules: :mod:`.cluster` (clients,
worker set-up), :mod:`.jobs` (data as arrays or files), :mod:`.fits` (:func:`fit_many`), :mod:`.sweeps`
(:func:`sweep`), :mod:`.chunked` (:func:`attribution_map`).
"""

from ..exceptions import FitManyError
from .chunked import attribution_map
from .cluster import local_client
from .fits import INDEX_NAME, FitOutcome, fit_many, fit_outcomes, model_path
from .sweeps import SweepResult, sweep

__all__ = ["fit_many", "fit_outcomes", "FitOutcome", "sweep", "attribution_map", "local_client", "FitManyError",
           "SweepResult", "model_path", "INDEX_NAME"]
