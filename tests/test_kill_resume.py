"""No lost work: a fit killed with SIGKILL resumes from its last checkpoint and ends with the same weights as
an uninterrupted run; damaged checkpoints are refused by name instead of being resumed from or overwritten;
a diverging fit keeps the last good weights and its log.

Why a kill can never leave a corrupt checkpoint: a checkpoint is written to a temporary file in the same
directory, flushed and fsync'ed, then renamed over the old one (``os.replace``, atomic on POSIX) and the
directory is fsync'ed. A process killed before the rename leaves the previous complete checkpoint (plus a
temporary file that the next fit removes); killed after it, the new complete one. So the only way to
find a damaged checkpoint is damage after writing (disk, copy, edit): fit then raises a ValueError that
names the file and leaves it alone (it never silently starts over and overwrites it).
"""

from __future__ import annotations

import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import torch

import xcebra.training as training
from xcebra import Objective, XCEBRA
from xcebra._files import read_tensors, write_tensors
from xcebra.training import CHECKPOINT_FORMAT, CHECKPOINT_NAME, DivergenceError

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")

MAX_STEPS = 30

# The run: a small model with checkpoints, built by SETUP in the child process (and, for the uninterrupted
# reference, in this process: same code, same single thread, so the same numbers).
SETUP = textwrap.dedent(f"""
    import numpy as np
    from xcebra import Objective, XCEBRA

    rng = np.random.default_rng(0)
    position = np.cumsum(rng.normal(scale=0.1, size=(600, 2)), axis=0).astype(np.float32)
    neural = (np.tanh(position @ rng.normal(size=(2, 12))) + 0.1 * rng.normal(size=(600, 12))).astype(np.float32)
    model = XCEBRA(
        [Objective("behavior", dims=(0, 2), distribution="time_delta", label="position"),
         Objective("time", dims=(0, 4), distribution="time", time_offset=3)],
        model="offset5", hidden_units=16, output_dim=4, batch_size=128, max_steps={MAX_STEPS},
        learning_rate=3e-3, learn_temperature=True, regularizer_weight=0.1, regularizer_ramp=(5, 15),
        random_state=7, num_threads=1, verbose=False)
""")

# ``delay`` seconds of sleep per step (in the regularizer schedule, which changes no number) make each step
# last at least that long, so that when the first checkpoint appears many steps are certainly left: the
# kill lands mid-fit without relying on the machine's speed.
CHILD = SETUP + textwrap.dedent("""
    import sys, time
    import xcebra.training.contrastive as training  # where the step calls the regularizer's schedule

    checkpoint_dir, out, delay, every = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    schedule = training.ramp_weight

    def slow_schedule(step, *args):
        time.sleep(delay)
        return schedule(step, *args)

    training.ramp_weight = slow_schedule
    model.fit(neural, position=position, checkpoint_dir=checkpoint_dir, checkpoint_every=every)
    model.save(out)
""")


def _start(script, tmp_path, checkpoint_dir, out, delay, every, name):
    log = open(tmp_path / f"{name}.log", "wb")
    process = subprocess.Popen([sys.executable, str(script), str(checkpoint_dir), str(out), str(delay), str(every)],
                               stdout=log, stderr=subprocess.STDOUT)
    log.close()
    return process


def _checkpoint_step(path) -> int:
    return read_tensors(path, expected_format=CHECKPOINT_FORMAT)[1]["step"]


def _kill_after(process, checkpoint, after_step: int, tmp_path, name) -> int:
    """Wait until a checkpoint later than ``after_step`` exists, SIGKILL the process, return the checkpoint's step."""
    deadline = time.monotonic() + 120
    while not (checkpoint.exists() and _checkpoint_step(checkpoint) > after_step):
        if process.poll() is not None:
            raise AssertionError(f"{name} exited early:\n" + (tmp_path / f"{name}.log").read_text())
        assert time.monotonic() < deadline, "no checkpoint appeared in time"
        time.sleep(0.01)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    step = _checkpoint_step(checkpoint)  # the last complete checkpoint: always readable
    assert after_step < step < MAX_STEPS, "the kill must land mid-fit"
    return step


def _assert_same_model(a: XCEBRA, b: XCEBRA):
    sa, sb = a.encoder_.state_dict(), b.encoder_.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key
    assert a.temperatures_ == b.temperatures_
    assert set(a.log_) == set(b.log_)
    for key in set(a.log_) - {"seconds"}:  # wall times differ; every loss value is identical
        np.testing.assert_array_equal(a.log_[key], b.log_[key], err_msg=key)


@pytest.mark.parametrize("every", [3])
def test_sigkill_mid_fit_then_restart_gives_the_uninterrupted_weights(tmp_path, every):
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    checkpoint_dir = tmp_path / "checkpoints"
    checkpoint = checkpoint_dir / CHECKPOINT_NAME
    out, reference_out = tmp_path / "resumed.xcebra", tmp_path / "reference.xcebra"
    first = _start(script, tmp_path, checkpoint_dir, out, 0.2, every, "first")  # >= 5 s of steps left
    # meanwhile, the uninterrupted reference run, here (no checkpoints, no delay)
    run: dict = {}
    exec(SETUP, run)
    run["model"].fit(run["neural"], position=run["position"]).save(reference_out)
    _kill_after(first, checkpoint, 0, tmp_path, "first")
    assert not out.exists()
    # what a kill during a checkpoint write leaves behind: a partial temporary file next to the checkpoint
    stale = checkpoint_dir / f".{CHECKPOINT_NAME}.k1ll3d.tmp"
    stale.write_bytes(checkpoint.read_bytes()[:100])
    last = _start(script, tmp_path, checkpoint_dir, out, 0, every, "last")
    assert last.wait(timeout=180) == 0, (tmp_path / "last.log").read_text()
    assert sorted(os.listdir(checkpoint_dir)) == [CHECKPOINT_NAME]  # the partial write was cleaned up
    assert _checkpoint_step(checkpoint) == MAX_STEPS
    resumed, uninterrupted = XCEBRA.load(out), XCEBRA.load(reference_out)
    assert len(resumed.log_["loss"]) == MAX_STEPS
    _assert_same_model(resumed, uninterrupted)


# --- damaged checkpoints: refused by name, never resumed from, never overwritten -----------------

def _recording():
    rng = np.random.default_rng(1)
    position = np.cumsum(rng.normal(scale=0.1, size=(150, 2)), axis=0).astype(np.float32)
    neural = (np.tanh(position @ rng.normal(size=(2, 5))) + 0.1 * rng.normal(size=(150, 5))).astype(np.float32)
    return neural, position


def _model(**kwargs):
    params = dict(objectives=[Objective("behavior", dims=(0, 2), distribution="time_delta", label="position"),
                              Objective("time", dims=(0, 4), distribution="time", time_offset=2)],
                  model="offset5", hidden_units=8, output_dim=4, batch_size=32, max_steps=4,
                  regularizer_weight=0.1, regularizer_ramp=(1, 2), random_state=0, verbose=False)
    params.update(kwargs)
    return XCEBRA(**params)


@pytest.fixture
def checkpointed(tmp_path):
    """A checkpoint after 2 of 4 steps, as a killed run leaves it."""
    neural, position = _recording()
    _model(max_steps=2).fit(neural, position=position, checkpoint_dir=tmp_path, checkpoint_every=2)
    path = tmp_path / CHECKPOINT_NAME
    # max_steps is part of the run's identity: rewrite the step-2 checkpoint as one of a 4-step run
    fingerprint = _model()._fit_fingerprint(training_data(neural, position))
    tensors, header = read_tensors(path, expected_format=CHECKPOINT_FORMAT)
    write_tensors(path, tensors, dict(header, fingerprint=fingerprint))
    return path, neural, position


def training_data(neural, position):
    from xcebra.data import TimeSeries
    return TimeSeries.from_arrays(neural, position=position)


def test_a_valid_checkpoint_resumes(checkpointed):
    path, neural, position = checkpointed
    resumed = _model().fit(neural, position=position, checkpoint_dir=path.parent, checkpoint_every=2)
    _assert_same_model(resumed, _model().fit(neural, position=position))


@pytest.mark.parametrize("damage", ["truncated header", "truncated data", "flipped byte", "empty", "garbage"])
def test_a_damaged_checkpoint_is_refused_by_name_and_left_untouched(checkpointed, damage):
    path, neural, position = checkpointed
    data = path.read_bytes()
    damaged = {
        "truncated header": data[:40],
        "truncated data": data[:-7],
        "flipped byte": data[:-50] + bytes([data[-50] ^ 0x10]) + data[-49:],
        "empty": b"",
        "garbage": bytes(range(256)) * 4,
    }[damage]
    path.write_bytes(damaged)
    with pytest.raises(ValueError, match=f"^cannot resume from checkpoint '{path}': .*Delete the file to start the "
                                         "run afresh, or pass another checkpoint_dir$"):
        _model().fit(neural, position=position, checkpoint_dir=path.parent, checkpoint_every=2)
    assert path.read_bytes() == damaged  # not overwritten
    assert os.listdir(path.parent) == [CHECKPOINT_NAME]


@pytest.mark.parametrize("edit, message", [
    (lambda t, h: ({**t, "model.encoder.net.0.weight": torch.zeros(3, 3, 2)}, h),
     r"its model entry 'encoder.net.0.weight' has shape \(3, 3, 2\) and dtype torch.float32; this model needs "
     r"\(8, 5, 2\) and torch.float32"),
    (lambda t, h: ({k: v for k, v in t.items() if k != "generator"}, h), "missing entry 'generator'"),
    (lambda t, h: (t, {**h, "step": 99}), r"its step 99 is not an int in 0..max_steps=4"),
    (lambda t, h: (t, {**h, "step": "2"}), r"its step '2' is not an int in 0..max_steps=4"),
    (lambda t, h: ({**t, "generator": t["generator"][:10]}, h), "its random generator state is malformed"),
    (lambda t, h: ({**t, "log.loss": torch.zeros(5, dtype=torch.float64)}, h), "its log does not match this run"),
    (lambda t, h: ({**t, "optim.0.exp_avg": torch.zeros(2)}, h),
     r"its optimizer state 'exp_avg' of parameter 0 has shape \(2,\)"),
    (lambda t, h: (t, {**h, "param_groups": "adam"}), ""),
])
def test_a_consistent_file_with_wrong_contents_is_refused_before_anything_changes(checkpointed, edit, message):
    """Files whose checksum is right but whose contents do not fit the run (a buggy writer, a hand edit)."""
    path, neural, position = checkpointed
    tensors, header = read_tensors(path, expected_format=CHECKPOINT_FORMAT)
    write_tensors(path, *edit(tensors, header))
    with pytest.raises(ValueError, match=f"^cannot resume from checkpoint '{path}': .*{message}"):
        _model().fit(neural, position=position, checkpoint_dir=path.parent, checkpoint_every=2)


def test_checkpoint_loader_refuses_truncations_cleanly(checkpointed):
    """Every truncation point of a checkpoint: a ValueError from the loader, never another error."""
    path, neural, position = checkpointed
    data = path.read_bytes()
    for size in sorted({0, 7, 8, 9, 100, len(data) // 2, len(data) - 1} | set(range(0, len(data), 997))):
        path.write_bytes(data[:size])
        with pytest.raises(ValueError, match="cannot resume from checkpoint"):
            _model().fit(neural, position=position, checkpoint_dir=path.parent, checkpoint_every=2)


# --- divergence: last good weights and the log up to the failure --------------------------------

def test_divergence_keeps_weights_and_log(monkeypatch):
    neural, position = _recording()
    calls = {"n": 0}
    real = training.contrastive.infonce

    def poisoned(*args, **kwargs):
        calls["n"] += 1
        value = real(*args, **kwargs)
        return value * float("nan") if calls["n"] > 6 else value  # two objectives per step: step 3 fails

    monkeypatch.setattr(training.contrastive, "infonce", poisoned)
    model = _model(max_steps=6)
    with pytest.raises(DivergenceError, match=r"^training diverged at step 3: loss=nan, gradient norm=nan\. The "
                                              r"weights from before this step were kept") as info:
        model.fit(neural, position=position)
    monkeypatch.undo()
    reference = _model(max_steps=3).fit(neural, position=position)
    assert info.value.step == 3
    assert set(model.log_) == set(reference.log_) and len(model.log_["loss"]) == 3
    for key in set(reference.log_) - {"seconds"}:
        np.testing.assert_array_equal(model.log_[key], reference.log_[key], err_msg=key)
    for key, value in reference.encoder_.state_dict().items():
        assert torch.equal(value, model.encoder_.state_dict()[key]), key
    # the error survives a process boundary (Dask, multiprocessing) with its step and log
    copy = pickle.loads(pickle.dumps(info.value))
    assert copy.step == 3 and str(copy) == str(info.value)
    np.testing.assert_array_equal(copy.log["loss"], info.value.log["loss"])


def test_an_update_that_makes_weights_non_finite_is_undone(monkeypatch):
    """A finite gradient can still overflow a weight; the step is undone and the error names it."""
    neural, position = _recording()
    real_step = torch.optim.Adam.step
    calls = {"n": 0}

    def overflowing_step(self, *args, **kwargs):
        result = real_step(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 3:  # the update of step 2
            with torch.no_grad():
                self.param_groups[0]["params"][0].mul_(float("inf"))
        return result

    monkeypatch.setattr(torch.optim.Adam, "step", overflowing_step)
    model = _model(max_steps=5)
    with pytest.raises(DivergenceError, match=r"^training diverged at step 2: the update made weights non-finite"):
        model.fit(neural, position=position)
    monkeypatch.undo()
    reference = _model(max_steps=2).fit(neural, position=position)
    for key, value in reference.encoder_.state_dict().items():
        assert torch.equal(value, model.encoder_.state_dict()[key]), key
    assert len(model.log_["loss"]) == 2
