"""Scale-out on Dask (xcebra/parallel.py): many fits, sweeps and chunked attribution maps.

Every cluster binds to 127.0.0.1 and starts no dashboard. Workers are real processes, so the data
sets that fail on purpose are objects with ``__array__`` whose class is pickled by value
(``cloudpickle.register_pickle_by_value``): the workers need not import this file.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import cloudpickle
import dask
import numpy as np
import pytest
import torch

import xcebra
from xcebra import parallel
from xcebra.parallel.fits import last_round_threads

distributed = pytest.importorskip("distributed")

cloudpickle.register_pickle_by_value(sys.modules[__name__])


def _estimator(**params) -> xcebra.XCEBRA:
    objectives = [xcebra.Objective("behavior", dims=(0, 3), distribution="time_delta", label="position"),
                  xcebra.Objective("time", dims=(3, 6), distribution="time", time_offset=2)]
    defaults = dict(model="offset5", output_dim=6, hidden_units=16, batch_size=64, max_steps=30, learning_rate=3e-3,
                    regularizer_weight=0.05, regularizer_ramp=None, random_state=0, verbose=False, num_threads=1)
    return xcebra.XCEBRA(objectives, **{**defaults, **params})


def _data(seed: int, n_timepoints: int = 600):
    data = xcebra.datasets.make_synthetic(n_timepoints=n_timepoints, n_neurons=10, random_state=seed)
    return data.neural, data.behavior


class FlakyArray:
    """An array that fails (raises, or kills its worker process) the first ``failures`` times it is read.

    Reads are counted in a file, so the count survives the process that read it.
    """

    def __init__(self, values: np.ndarray, counter: str, failures: int, kill: bool = False):
        self.values, self.counter, self.failures, self.kill = values, counter, failures, kill

    def __array__(self, dtype=None, copy=None):
        reads = int(Path(self.counter).read_text()) if os.path.exists(self.counter) else 0
        Path(self.counter).write_text(str(reads + 1))
        if reads < self.failures:
            if self.kill:
                os.kill(os.getpid(), signal.SIGKILL)
            raise RuntimeError(f"injected failure {reads + 1} of {self.failures}")
        return self.values if dtype is None else self.values.astype(dtype)


@pytest.fixture(scope="module")
def client():
    # a worker death counts once: the always-killing job fails fast instead of killing 4 workers
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        with parallel.local_client(n_workers=2) as c:
            yield c


def _assert_same_weights(a: xcebra.XCEBRA, b: xcebra.XCEBRA) -> None:
    """Same fit in another process: equal up to float32 round-off.

    Not bit for bit: a worker's BLAS may pick another kernel for differently aligned buffers (seen once in
    the full suite, never alone); a different seed or batch would differ by orders of magnitude more.
    """
    sa, sb = a.encoder_.state_dict(), b.encoder_.state_dict()
    assert sa.keys() == sb.keys()
    for name in sa:
        torch.testing.assert_close(sa[name], sb[name], rtol=1e-4, atol=1e-6, msg=name)


# ---------------------------------------------------------------------------------------------- fit_many
def test_fit_many_retries_a_failure_and_matches_single_process_fits(client, tmp_path):
    recordings = [_data(seed) for seed in range(3)]
    flaky = FlakyArray(recordings[1][0], str(tmp_path / "reads"), failures=1)
    datasets = [{"neural": recordings[0][0], "position": recordings[0][1]},
                {"neural": flaky, "position": recordings[1][1]},
                {"neural": recordings[2][0], "position": recordings[2][1]}]
    estimator = _estimator()
    models = parallel.fit_many(estimator, datasets, client=client, out_dir=tmp_path / "models", retries=2)
    assert int((tmp_path / "reads").read_text()) == 2  # failed once, then retried
    assert not hasattr(estimator, "encoder_")  # the template is not fitted
    for (neural, position), model in zip(recordings, models):
        single = _estimator().fit(neural, position=position)
        _assert_same_weights(model, single)
        np.testing.assert_allclose(model.log_["loss"], single.log_["loss"], rtol=1e-5)
        path = parallel.model_path(tmp_path / "models", estimator, neural, position=position)
        assert path.is_file()
        _assert_same_weights(xcebra.XCEBRA.load(path), single)
    assert len(list((tmp_path / "models").glob("*.xcebra"))) == 3
    index = json.loads((tmp_path / "models" / parallel.INDEX_NAME).read_text())
    assert sorted(index) == sorted(p.name for p in (tmp_path / "models").glob("*.xcebra"))
    assert sorted(entry["neural"] for entry in index.values()) == ["FlakyArray", "array of shape (600, 10)",
                                                                    "array of shape (600, 10)"]


def test_fit_many_params_give_each_job_its_own_settings(client, tmp_path):
    # a seed ensemble of a euclidean (bounded by default) model: each job its seed, each model as fitted alone
    neural, position = _data(0)
    estimator = _estimator(loss="euclidean")
    models = parallel.fit_many(estimator, [{"neural": neural, "position": position}] * 2, client=client,
                               out_dir=tmp_path, params=[{"random_state": 3}, {"random_state": 4}])
    assert [m.random_state for m in models] == [3, 4] and estimator.random_state == 0
    for seed, model in zip((3, 4), models):
        _assert_same_weights(model, _estimator(loss="euclidean", random_state=seed).fit(neural, position=position))
    assert not np.allclose(models[0].transform(neural), models[1].transform(neural))
    with pytest.raises(ValueError, match="params must be a list of 2 dicts, one per data set"):
        parallel.fit_many(estimator, [{"neural": neural, "position": position}] * 2, client=client, params=[{}])


def test_fit_many_rerun_reads_finished_models_instead_of_fitting(client, tmp_path):
    neural, position = _data(0)
    estimator = _estimator()
    first = parallel.fit_many(estimator, [{"neural": neural, "position": position}], client=client, out_dir=tmp_path)
    path = parallel.model_path(tmp_path, estimator, neural, position=position)
    stamp = path.stat().st_mtime_ns
    # a data set that could not be read a second time: the rerun must not need it to be fitted again
    counter = tmp_path / "reads"
    guard = FlakyArray(neural, str(counter), failures=0)
    again = parallel.fit_many(estimator, [{"neural": guard, "position": position}], client=client, out_dir=tmp_path)
    assert path.stat().st_mtime_ns == stamp
    _assert_same_weights(again[0], first[0])
    # other parameters are another job: a new file
    other = parallel.fit_many(estimator.set_params(max_steps=31), [{"neural": neural, "position": position}],
                              client=client, out_dir=tmp_path)
    assert len(list(tmp_path.glob("*.xcebra"))) == 2
    assert len(other[0].log_["loss"]) == 31


def _mean_embedding_norm(model, data):
    """A ``then`` for fit_many: runs on the worker, on the job's data as it was read."""
    return float(np.linalg.norm(model.transform(data["neural"]), axis=1).mean()), sorted(data)


def test_then_runs_on_each_job_after_its_fit_or_read_and_returns_its_value(client, tmp_path):
    recordings = [_data(seed) for seed in range(2)]
    datasets = [{"neural": neural, "position": position} for neural, position in recordings]
    estimator = _estimator()
    for rerun in (False, True):  # the second call reads the models: ``then`` still runs on each
        outcomes = parallel.fit_outcomes(estimator, datasets, client=client, out_dir=tmp_path,
                                         then=_mean_embedding_norm)
        assert [o.skipped for o in outcomes] == [rerun, rerun]
        for (neural, _), outcome in zip(recordings, outcomes):
            norm, keys = outcome.extra
            assert keys == ["neural", "position"]
            assert norm == pytest.approx(np.linalg.norm(outcome.model.transform(neural), axis=1).mean(), rel=1e-6)
            assert outcome.then_seconds > 0 and outcome.threads == 1  # the estimator fixes num_threads=1
    assert parallel.fit_outcomes(estimator, datasets[:1], client=client, out_dir=tmp_path)[0].extra is None
    with pytest.raises(TypeError, match="then must be None or a callable then\\(model, data\\); got int"):
        parallel.fit_many(estimator, datasets, client=client, then=3)


@pytest.mark.parametrize("hosts, n_jobs, expected", [
    ({"h": [1, 1]}, 5, [None] * 4 + [2]),               # the fifth fit gets the idle worker's core too
    ({"h": [1, 1]}, 4, [None] * 4),                     # full rounds: each job its worker's thread
    ({"h": [1, 1]}, 1, [2]),                            # fewer jobs than workers
    ({"h": [1, 1, 1, 1]}, 6, [None] * 4 + [2, 2]),      # two jobs share the four cores of the last round
    ({"h": [1, 1, 1, 1]}, 7, [None] * 4 + [1, 1, 1]),   # 4 // 3 = 1: nothing to share
    ({"h": [2, 2]}, 3, [None, None, 4]),
    ({"h": [1, 2]}, 3, [None] * 3),                     # unequal workers: left alone
    ({"a": [1], "b": [1]}, 3, [None] * 3),              # two machines: a job cannot use the other's cores
    ({}, 2, [None, None]),
])
def test_last_round_threads_share_the_idle_workers_cores(hosts, n_jobs, expected):
    assert last_round_threads(hosts, n_jobs) == expected


def test_the_last_job_of_an_uneven_round_runs_on_the_idle_workers_threads(client):
    neural, position = _data(0)
    outcomes = parallel.fit_outcomes(_estimator(num_threads=None, max_steps=5),
                                     [{"neural": neural, "position": position}] * 3, client=client)
    assert [o.threads for o in outcomes] == [1, 1, 2]


def test_a_damaged_model_file_is_refused_not_overwritten(client, tmp_path):
    neural, position = _data(0)
    estimator = _estimator(max_steps=5)
    parallel.fit_many(estimator, [{"neural": neural, "position": position}], client=client, out_dir=tmp_path)
    path = parallel.model_path(tmp_path, estimator, neural, position=position)
    damaged = bytearray(path.read_bytes())
    damaged[-10] ^= 0xFF
    path.write_bytes(bytes(damaged))
    with pytest.raises(parallel.FitManyError, match="delete .* to fit this job again"):
        parallel.fit_many(estimator, [{"neural": neural, "position": position}], client=client, out_dir=tmp_path,
                          retries=0)
    assert path.read_bytes() == bytes(damaged)


def test_a_killed_worker_loses_no_finished_result(client, tmp_path):
    recordings = [_data(seed) for seed in range(2)]
    killer = FlakyArray(recordings[1][0], str(tmp_path / "kills"), failures=10 ** 6, kill=True)
    datasets = [{"neural": recordings[0][0], "position": recordings[0][1]},
                {"neural": killer, "position": recordings[1][1]}]
    with pytest.raises(parallel.FitManyError, match=r"1 of 2 fits failed.*rerun fits only the failed") as caught:
        parallel.fit_many(_estimator(), datasets, client=client, out_dir=tmp_path / "models", retries=0)
    assert list(caught.value.failures) == [1]
    assert caught.value.models[1] is None
    finished = caught.value.models[0]
    path = parallel.model_path(tmp_path / "models", _estimator(), *recordings[0][:1], position=recordings[0][1])
    stamp = path.stat().st_mtime_ns
    # the worker that died was replaced; the rerun fits only the job that failed
    datasets[1] = {"neural": recordings[1][0], "position": recordings[1][1]}
    models = parallel.fit_many(_estimator(), datasets, client=client, out_dir=tmp_path / "models")
    assert path.stat().st_mtime_ns == stamp
    _assert_same_weights(models[0], finished)
    _assert_same_weights(models[1], _estimator().fit(recordings[1][0], position=recordings[1][1]))


def test_a_worker_killed_once_is_replaced_and_its_job_rerun(client, tmp_path):
    neural, position = _data(1)
    killer = FlakyArray(neural, str(tmp_path / "kills"), failures=1, kill=True)
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        (model,) = parallel.fit_many(_estimator(), [{"neural": killer, "position": position}], client=client)
    assert int((tmp_path / "kills").read_text()) == 2
    _assert_same_weights(model, _estimator().fit(neural, position=position))


def test_fit_many_reads_files_on_the_worker(client, tmp_path):
    neural, position = _data(2)
    np.save(tmp_path / "spikes.npy", neural)
    np.savez(tmp_path / "behaviour.npz", pos=position, position=position)
    datasets = [{"neural": str(tmp_path / "spikes.npy"), "position": (tmp_path / "behaviour.npz", "pos")},
                {"neural": tmp_path / "spikes.npy", "position": str(tmp_path / "behaviour.npz")}]  # key = entry name
    models = parallel.fit_many(_estimator(), datasets, client=client)
    single = _estimator().fit(neural, position=position)
    for model in models:
        _assert_same_weights(model, single)


def test_fit_many_reports_every_failure(client, tmp_path):
    neural, position = _data(0)
    datasets = [{"neural": neural, "position": position}, {"neural": neural, "position": position[:-1]},
                {"neural": str(tmp_path / "missing.npy"), "position": position}]
    with pytest.raises(parallel.FitManyError) as caught:
        parallel.fit_many(_estimator(), datasets, client=client, retries=0)
    message = str(caught.value)
    assert "2 of 3 fits failed" in message
    assert "job 1: ValueError" in message and "599" in message and "600" in message
    assert "job 2: ValueError" in message and "missing.npy" in message
    assert caught.value.models[0] is not None and caught.value.models[1] is None


@pytest.mark.parametrize("datasets, message", [
    ({"neural": np.zeros((10, 2))}, "datasets must be a list of dicts"),
    ([np.zeros((10, 2))], r"datasets\[0\] must be a dict"),
    ([{"position": np.zeros(10)}], r"datasets\[0\] has no 'neural' entry; it has 'position'"),
    ([{"neural": np.zeros((10, 2)), "checkpoint_dir": "x"}], "'checkpoint_dir' is reserved"),
])
def test_fit_many_rejects_bad_jobs_before_starting(datasets, message):
    with pytest.raises(ValueError, match=message):
        parallel.fit_many(_estimator(), datasets, client=object())  # never reached: no cluster is needed


def test_fit_many_rejects_bad_retries_and_parameters():
    with pytest.raises(ValueError, match="retries must be an int >= 0; got -1"):
        parallel.fit_many(_estimator(), [{"neural": np.zeros((10, 2))}], client=object(), retries=-1)
    with pytest.raises(ValueError, match="batch_size"):
        parallel.fit_many(_estimator(batch_size=0), [{"neural": np.zeros((10, 2))}], client=object())


def test_fit_many_on_a_dask_jobqueue_cluster(tmp_path):
    """The machinery of SLURMCluster (job scripts, workers started as separate jobs) with jobs run locally."""
    from dask_jobqueue.local import LocalCluster as JobQueueLocalCluster

    cluster = JobQueueLocalCluster(cores=1, processes=1, memory="2GiB",
                                   scheduler_options={"host": "127.0.0.1", "dashboard_address": "127.0.0.1:0",
                                                      "dashboard": False},
                                   worker_extra_args=["--host", "127.0.0.1", "--no-dashboard"],
                                   local_directory=str(tmp_path), log_directory=str(tmp_path / "logs"))
    try:
        assert "dask_worker" in cluster.job_script() or "distributed.cli.dask_worker" in cluster.job_script()
        cluster.scale(jobs=2)
        with distributed.Client(cluster) as jobqueue_client:
            jobqueue_client.wait_for_workers(2, timeout=120)
            recordings = [_data(seed) for seed in range(2)]
            models = parallel.fit_many(_estimator(), [{"neural": n, "position": p} for n, p in recordings],
                                       client=jobqueue_client, out_dir=tmp_path / "models")
    finally:
        cluster.close()
    for (neural, position), model in zip(recordings, models):
        _assert_same_weights(model, _estimator().fit(neural, position=position))


# ---------------------------------------------------------------------------------------------- sweep
def test_sweep_scores_every_configuration_on_held_out_time(client):
    neural, position = _data(0, n_timepoints=900)
    estimator = _estimator(max_steps=40)
    grid = {"regularizer_weight": [0.0, 0.1], "hidden_units": [8, 16]}
    table, best = parallel.sweep(estimator, grid, neural, client=client, cv=2, position=position, n_batches=3)
    rows = table.to_dict("records") if hasattr(table, "to_dict") else table
    assert len(rows) == 4
    assert sorted(r["rank"] for r in rows) == [1, 2, 3, 4]
    first = min(rows, key=lambda r: r["rank"])
    assert best == {"regularizer_weight": first["regularizer_weight"], "hidden_units": first["hidden_units"]}
    assert first["score"] == max(r["score"] for r in rows)
    assert all(r["score"] == r["r2/behavior/position"] for r in rows)  # the default: behaviour block, its label
    for key in ("loss/behavior", "loss/time", "r2/time/position", "r2/behavior/position_std", "fit_seconds"):
        assert key in rows[0]
    # one row against an independent computation: fit on each training segment, score the next segment
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import r2_score
    from sklearn.model_selection import TimeSeriesSplit

    row = next(r for r in rows if r["regularizer_weight"] == 0.1 and r["hidden_units"] == 8)
    gap = 5 + 2  # offset5 window + the time objective's offset
    losses, r2 = [], []
    for train, test in TimeSeriesSplit(n_splits=2, gap=gap).split(neural):
        model = _estimator(max_steps=40, regularizer_weight=0.1, hidden_units=8).fit(neural[train], position=position[train])
        losses.append(model.objective_losses(neural[test], position=position[test], n_batches=3)["time"])
        decoder = LinearRegression().fit(model.transform(neural[train])[:, :3], position[train])
        r2.append(r2_score(position[test], decoder.predict(model.transform(neural[test])[:, :3])))
    np.testing.assert_allclose(row["loss/time"], np.mean(losses), rtol=1e-6)
    np.testing.assert_allclose(row["r2/behavior/position"], np.mean(r2), rtol=1e-6)


def test_sweep_ranks_by_a_loss_with_lower_better(client):
    neural, position = _data(0, n_timepoints=700)
    table, best = parallel.sweep(_estimator(max_steps=20), {"learning_rate": [1e-5, 3e-3]}, neural, client=client,
                                 cv=[(np.arange(0, 400), np.arange(420, 700))], scoring="loss/time", position=position)
    rows = table.to_dict("records") if hasattr(table, "to_dict") else table
    assert all(r["score"] == -r["loss/time"] for r in rows)
    assert best == min(({"learning_rate": r["learning_rate"]} for r in rows),
                       key=lambda p: next(r["loss/time"] for r in rows if r["learning_rate"] == p["learning_rate"]))


def test_sweep_table_is_a_list_of_dicts_without_pandas(monkeypatch):
    rows = [{"regularizer_weight": 0.0, "score": 0.5, "rank": 1}]
    assert type(parallel.sweeps._table(rows)).__name__ == "DataFrame"
    monkeypatch.setitem(sys.modules, "pandas", None)  # import pandas now fails
    assert parallel.sweeps._table(rows) == rows


@pytest.mark.parametrize("kwargs, message", [
    (dict(cv=[(np.array([0, 1, 5]), np.arange(10, 20))]), "train indices must be one contiguous"),
    (dict(cv=[(np.arange(0, 100), np.arange(590, 610))]), r"test indices 590..609 are outside 0..599"),
    (dict(cv="time"), "cv must be an int >= 2"),
    (dict(scoring="accuracy"), "scoring must name a column"),
    (dict(scoring="r2/behaviour/position"), r"scoring 'r2/behaviour/position' is not a metric of the configuration "
                                            r"\{'max_steps': 1\}; it has loss/behavior, loss/time, r2/behavior/position"),
    (dict(n_batches=0), "n_batches must be an int >= 1; got 0"),
])
def test_sweep_rejects_bad_arguments_before_fitting(kwargs, message):
    neural, position = _data(0)
    with pytest.raises(ValueError, match=message):
        parallel.sweep(_estimator(), {"max_steps": [1]}, neural, client=object(), position=position, **kwargs)


def test_sweep_rejects_a_bad_grid_point_and_labels_of_the_wrong_length():
    neural, position = _data(0)
    with pytest.raises(ValueError, match="batch_size"):
        parallel.sweep(_estimator(), {"batch_size": [64, -1]}, neural, client=object(), position=position)
    with pytest.raises(ValueError, match="599"):
        parallel.sweep(_estimator(), {"max_steps": [1]}, neural, client=object(), position=position[:-1])


# ---------------------------------------------------------------------------------------------- attribution
@pytest.fixture(scope="module")
def fitted():
    neural, position = _data(0, n_timepoints=1500)
    return _estimator(max_steps=20).fit(neural, position=position), neural


def _assert_same_map(chunked, single):
    np.testing.assert_allclose(chunked.values, single.values, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(chunked.stderr, single.stderr, rtol=1e-8, atol=1e-14)
    assert chunked.n_timepoints == single.n_timepoints and chunked.method == single.method
    assert chunked.blocks == single.blocks


@pytest.mark.parametrize("method, options", [
    ("ing", dict()),
    ("jacobian", dict(num_samples=700, random_state=3)),
    ("ing-block", dict(num_samples=700, block_ranks={"behavior": 1})),
    ("gradient-shap", dict(num_samples=500, n_samples=4)),  # random numbers per batch: stream k for batch k
])
def test_chunked_map_equals_the_single_process_map(client, fitted, method, options):
    model, neural = fitted
    single = model.attribution_map(neural, method, batch_size=64, **options)
    chunked = parallel.attribution_map(model, neural, method, client=client, chunk_size=150, batch_size=64, **options)
    _assert_same_map(chunked, single)
    assert chunked.options["n_chunks"] == -(-single.n_timepoints // 192)  # 150 rounded up to whole batches of 64
    assert 0 < chunked.options["peak_worker_bytes"] < 2 * 2 ** 30


def test_chunked_map_reads_files_on_the_workers(client, fitted, tmp_path):
    h5py = pytest.importorskip("h5py")
    model, neural = fitted
    single = model.attribution_map(neural, "ing", batch_size=128)
    np.save(tmp_path / "neural.npy", neural)
    memmap = np.load(tmp_path / "neural.npy", mmap_mode="r")
    with h5py.File(tmp_path / "neural.h5", "w") as handle:
        handle["group/spikes"] = neural
    sources = [str(tmp_path / "neural.npy"), memmap, (tmp_path / "neural.h5", "group/spikes")]
    for source in sources:
        _assert_same_map(parallel.attribution_map(model, source, client=client, chunk_size=400, batch_size=128), single)
    with h5py.File(tmp_path / "neural.h5", "r") as handle:
        _assert_same_map(parallel.attribution_map(model, handle["group/spikes"], client=client, chunk_size=400,
                                                  batch_size=128), single)
    assert parallel.chunked._on_disk(memmap) is not None  # the memory map travelled as a description, not as rows


def test_chunked_map_checks_its_arguments(fitted):
    model, neural = fitted
    with pytest.raises(ValueError, match="chunk_size must be an int >= 1; got 0"):
        parallel.attribution_map(model, neural, client=object(), chunk_size=0)
    with pytest.raises(ValueError, match="method must be one of"):
        parallel.attribution_map(model, neural, "saliency", client=object())
    with pytest.raises(ValueError, match="neural has 9 neurons but the model was fit on 10"):
        parallel.attribution_map(model, neural[:, :9], client=object())
    with pytest.raises(Exception, match="not fitted"):
        parallel.attribution_map(_estimator(), neural, client=object())
