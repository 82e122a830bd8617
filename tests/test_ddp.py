"""Data-parallel training (xcebra/ddp.py): two gloo processes must give the loss and gradients of one process.

The processes bind only to 127.0.0.1. Gradients are compared directly (recorded at every optimiser
step), not only through the final weights: Adam's first steps are nearly invariant to a constant
factor on the gradient, so a missing 1/world_size would not show in the weights.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import xcebra
from xcebra import ddp

STEPS = 3

CONFIGS = {
    # MLP, euclidean loss, behaviour + time objectives, learnable temperature, regularizer from step 0
    "offset1": dict(model="offset1", output_dim=6, hidden_units=32, loss="euclidean", learn_temperature=True,
                    regularizer_weight=0.1, regularizer_ramp=None, regularizer_batch_size=48),
    # convolutional encoder: each rank convolves over its own time segment (whole-sequence path)
    "offset10": dict(model="offset10", output_dim=6, hidden_units=16, loss="cosine", regularizer_weight=0.5,
                     regularizer_ramp=None, regularizer_batch_size=None, regularizer_projections=2),
    # spectrally normalised weights: every rank must run the same power iterations as one process
    "offset1-lipschitz": dict(model="offset1", output_dim=6, hidden_units=32, loss="euclidean", lipschitz=4.0,
                              regularizer_weight=0.1, regularizer_ramp=None, regularizer_batch_size=48),
    # exact Frobenius norm, regularizer switched on by the ramp during the run
    "offset5-exact": dict(model="offset5", output_dim=6, hidden_units=16, loss="cosine", regularizer_weight=0.2,
                          regularizer_ramp=(1, 2), regularizer_exact=True),
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _data(seed: int = 0):
    data = xcebra.datasets.make_synthetic(n_timepoints=700, n_neurons=12, random_state=seed)
    return data.neural, data.behavior


def _estimator(config: str) -> xcebra.XCEBRA:
    objectives = [xcebra.Objective("behavior", dims=(0, 3), distribution="time_delta", label="position"),
                  xcebra.Objective("time", dims=(3, 6), distribution="time", time_offset=5)]
    return xcebra.XCEBRA(objectives, batch_size=64, max_steps=STEPS, learning_rate=1e-3, random_state=3,
                         verbose=False, num_threads=1, **CONFIGS[config])


class _RecordingAdam(torch.optim.Adam):
    """Adam that keeps a copy of every gradient it is asked to apply."""

    recorded: list = []

    def step(self, closure=None):
        _RecordingAdam.recorded.append([p.grad.detach().clone() for g in self.param_groups for p in g["params"]
                                        if p.grad is not None])
        return super().step(closure)


def _fit_recording(config: str):
    _RecordingAdam.recorded = []
    original = torch.optim.Adam
    torch.optim.Adam = _RecordingAdam
    try:
        neural, position = _data()
        model = _estimator(config).fit(neural, position=position)
    finally:
        torch.optim.Adam = original
    return model, list(_RecordingAdam.recorded)


def _rank_main(rank: int, world: int, port: int, config: str, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        model, grads = _fit_recording(config)
        torch.save({"grads": grads, "log": {k: torch.from_numpy(v) for k, v in model.log_.items()},
                    "weights": model.encoder_.state_dict(), "seed": model.random_state_},
                   os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _run_ranks(config: str, tmp_path: Path, world: int = 2) -> list[dict]:
    mp.start_processes(_rank_main, args=(world, _free_port(), config, str(tmp_path)), nprocs=world,
                       start_method="spawn", join=True)
    return [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(world)]


@pytest.mark.parametrize("config", list(CONFIGS))
def test_two_processes_give_the_loss_and_gradients_of_one(config, tmp_path):
    threads = torch.get_num_threads()
    try:
        single, single_grads = _fit_recording(config)
    finally:
        torch.set_num_threads(threads)
    ranks = _run_ranks(config, tmp_path)
    assert len(single_grads) == STEPS
    for result in ranks:
        assert len(result["grads"]) == STEPS
        for step, (expected, got) in enumerate(zip(single_grads, result["grads"])):
            assert len(expected) == len(got)
            # round-off is relative to the gradient as a whole (some entries are exactly 0 in exact arithmetic)
            scale = max(e.abs().max().item() for e in expected)
            for e, g in zip(expected, got):
                assert torch.allclose(g, e, rtol=1e-4, atol=1e-5 * scale), \
                    f"step {step}: max gradient difference {(g - e).abs().max().item():.3g} (scale {scale:.3g})"
        for key in ("loss", "loss/behavior", "loss/time", "regularizer", "regularizer_weight"):
            np.testing.assert_allclose(result["log"][key].numpy(), single.log_[key], rtol=1e-5, atol=1e-6,
                                       err_msg=key)
        # Adam divides by the gradient's own size, so a parameter whose true gradient is 0 (the output bias
        # under the translation-invariant euclidean loss) moves by +-lr on round-off: compare the others
        for i, (name, tensor) in enumerate(single.encoder_.named_parameters()):
            relative = max(step[i].abs().max().item() / max(e.abs().max().item() for e in step)
                           for step in single_grads)
            if relative > 1e-4:
                torch.testing.assert_close(result["weights"][name], tensor.detach(), rtol=1e-4, atol=1e-5)
    if CONFIGS[config].get("regularizer_ramp") != (1, 2):
        assert single.log_["regularizer"].min() > 0  # the regularizer really took part


def test_ranks_agree_on_a_seed_drawn_at_random(tmp_path):
    """random_state=None: rank 0's seed is broadcast, so the ranks still draw the same batches."""
    port = _free_port()
    mp.start_processes(_seedless_rank, args=(2, port, str(tmp_path)), nprocs=2, start_method="spawn", join=True)
    results = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    assert results[0]["seed"] == results[1]["seed"]
    for name in results[0]["weights"]:
        torch.testing.assert_close(results[0]["weights"][name], results[1]["weights"][name], rtol=0, atol=0)


def _seedless_rank(rank: int, world: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        neural, position = _data()
        model = _estimator("offset1").set_params(random_state=None).fit(neural, position=position)
        torch.save({"weights": model.encoder_.state_dict(), "seed": model.random_state_},
                   os.path.join(out, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def _mismatched_rank(rank: int, world: int, port: int, out: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
    try:
        neural, position = _data(seed=rank)  # each rank loads another recording: a user error
        try:
            _estimator("offset1").fit(neural, position=position)
        except ValueError as error:
            Path(out, f"rank{rank}.txt").write_text(str(error))
    finally:
        dist.destroy_process_group()


def test_ranks_with_different_data_are_refused(tmp_path):
    mp.start_processes(_mismatched_rank, args=(2, _free_port(), str(tmp_path)), nprocs=2, start_method="spawn",
                       join=True)
    for rank in range(2):
        message = (tmp_path / f"rank{rank}.txt").read_text()
        assert "differ between ranks" in message and "same data" in message


_TORCHRUN_SCRIPT = textwrap.dedent("""
    import sys, torch, xcebra
    sys.path.insert(0, {tests!r})
    from test_ddp import _data, _estimator
    neural, position = _data()
    model = _estimator("offset10").set_params(verbose=True, max_steps=4)
    model.fit(neural, position=position, checkpoint_dir={checkpoints!r}, checkpoint_every=2)
    model.save({model_path!r})
    import torch.distributed as dist
    print("rank", dist.get_rank(), "of", dist.get_world_size(), "seed", model.random_state_)
""")


def test_fit_under_torchrun_matches_one_process(tmp_path):
    """The real launcher: ``torchrun --nproc_per_node=2``; only rank 0 writes files and shows progress."""
    script = tmp_path / "train.py"
    model_path, checkpoints = tmp_path / "model.xcebra", tmp_path / "checkpoints"
    script.write_text(_TORCHRUN_SCRIPT.format(tests=str(Path(__file__).parent), checkpoints=str(checkpoints),
                                              model_path=str(model_path)))
    logs = tmp_path / "logs"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")}
    env["OMP_NUM_THREADS"] = "1"
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
         f"--master_port={_free_port()}", "--log-dir", str(logs), "--redirects", "3", str(script)],
        capture_output=True, text=True, env=env, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    outputs = {int(p.parent.name): p.read_text() for p in logs.rglob("stdout.log")}
    errors = {int(p.parent.name): p.read_text() for p in logs.rglob("stderr.log")}
    assert sorted(outputs) == [0, 1]
    assert "rank 0 of 2" in outputs[0] and "rank 1 of 2" in outputs[1]
    assert "xcebra fit" in errors[0] and "xcebra fit" not in errors[1]  # one progress bar
    assert sorted(p.name for p in checkpoints.iterdir()) == ["checkpoint.safetensors"]
    loaded = xcebra.XCEBRA.load(model_path)
    neural, position = _data()
    single = _estimator("offset10").set_params(max_steps=4).fit(neural, position=position)
    for name, tensor in single.encoder_.state_dict().items():
        torch.testing.assert_close(loaded.encoder_.state_dict()[name], tensor, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(loaded.log_["loss"], single.log_["loss"], rtol=1e-5)


def test_single_process_has_no_group(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "SLURM_PROCID", "SLURM_NTASKS"):
        monkeypatch.delenv(name, raising=False)
    assert ddp.current_group() is None
    assert ddp.is_rank_zero()


def test_a_one_process_launch_is_not_data_parallel(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    assert ddp.current_group() is None
    assert not dist.is_initialized()


@pytest.mark.parametrize("world", [2, 3, 5])
def test_segments_cover_the_domain_and_owners_match_them(world):
    group = ddp.ProcessGroup(rank=0, world_size=world)
    start, stop = 7, 1000
    segments = [group.segment(start, stop, r) for r in range(world)]
    assert segments[0][0] == start and segments[-1][1] == stop
    assert all(a[1] == b[0] for a, b in zip(segments, segments[1:]))
    index = torch.arange(start, stop)
    owners = group.owners(index, start, stop)
    for r, (a, b) in enumerate(segments):
        assert torch.equal(index[owners == r], torch.arange(a, b))
