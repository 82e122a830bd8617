"""The CUDA path agrees with the CPU path (marker ``cuda``; run on a GPU machine with ``pytest -m cuda``).

Every test fits or evaluates the same model on the accelerator and on the CPU and compares them within
stated tolerances. Without CUDA they are skipped. ``XCEBRA_TEST_DEVICE=cpu`` runs them with the CPU in the
accelerator's place: a dry run of the test logic on a machine without a GPU (both sides then agree
trivially, but every call, shape and file round trip is exercised).
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

import xcebra
from xcebra import Objective, XCEBRA

pytestmark = pytest.mark.cuda

DEVICE = os.environ.get("XCEBRA_TEST_DEVICE", "cuda")
if DEVICE == "cuda" and not torch.cuda.is_available():
    pytest.skip("no CUDA device (set XCEBRA_TEST_DEVICE=cpu for a dry run)", allow_module_level=True)

#: float32 on a GPU sums in another order than on a CPU (and TF32 is off by default for matmuls):
#: one forward pass agrees to ~1e-5 relative; a short fit drifts further, since every step compounds it
FORWARD_RTOL, FORWARD_ATOL = 1e-4, 1e-5
FIT_LOSS_RTOL = 0.05


@pytest.fixture(scope="module")
def data():
    return xcebra.datasets.make_synthetic(n_timepoints=3000, n_neurons=30, random_state=0)


def _model(**params) -> XCEBRA:
    defaults = dict(model="offset1", hidden_units=64, output_dim=6, loss="euclidean", batch_size=256, max_steps=200,
                    learning_rate=1e-3, regularizer_weight=0.01, regularizer_ramp=None, random_state=0, verbose=False)
    objectives = [Objective("behavior", dims=(0, 3), distribution="time_delta", label="behavior"),
                  Objective("time", dims=(0, 6), distribution="time", time_offset=1)]
    return XCEBRA(objectives, **{**defaults, **params})


def test_device_auto_picks_the_accelerator(data):
    model = _model(device="auto" if DEVICE == "cuda" else "cpu", max_steps=2).fit(data.neural, behavior=data.behavior)
    assert next(model.encoder_.parameters()).device.type == DEVICE


def test_a_cuda_fit_trains_like_a_cpu_fit(data):
    on_device = _model(device=DEVICE).fit(data.neural, behavior=data.behavior)
    on_cpu = _model(device="cpu").fit(data.neural, behavior=data.behavior)
    # same seed, same batches: the losses follow each other, up to the drift of summation order
    end_device = np.median(on_device.log_["loss"][-20:])
    end_cpu = np.median(on_cpu.log_["loss"][-20:])
    assert abs(end_device - end_cpu) <= FIT_LOSS_RTOL * abs(end_cpu) + 0.05
    assert on_device.log_["loss"][-1] < on_device.log_["loss"][0]


def test_transform_and_attribution_on_the_device_match_the_cpu(tmp_path, data):
    model = _model(device=DEVICE).fit(data.neural, behavior=data.behavior)
    embedding = model.transform(data.neural)
    path = tmp_path / "model.xcebra"
    model.save(path)
    on_cpu = XCEBRA.load(path, device="cpu")  # a CUDA-trained model loads on a CPU-only machine
    assert next(on_cpu.encoder_.parameters()).device.type == "cpu"
    np.testing.assert_allclose(on_cpu.transform(data.neural), embedding, rtol=FORWARD_RTOL, atol=FORWARD_ATOL)
    for method in ("jacobian", "ing", "ing-block"):
        device_map = model.attribution_map(data.neural[:1000], method=method, verbose=False)
        cpu_map = on_cpu.attribution_map(data.neural[:1000], method=method, verbose=False)
        scale = np.abs(cpu_map.values).max()
        np.testing.assert_allclose(device_map.values, cpu_map.values, rtol=1e-3, atol=1e-4 * scale,
                                   err_msg=method)


def test_bf16_training_on_the_device_stays_close_to_fp32(data):
    bf16 = _model(device=DEVICE, precision="bf16").fit(data.neural, behavior=data.behavior)
    fp32 = _model(device=DEVICE).fit(data.neural, behavior=data.behavior)
    truth = data.block_truth
    auc_bf16 = xcebra.metrics.block_auc(bf16.attribution_map(data.neural, method="ing", verbose=False), truth)
    auc_fp32 = xcebra.metrics.block_auc(fp32.attribution_map(data.neural, method="ing", verbose=False), truth)
    # bf16 keeps 8 bits of mantissa: the fits differ, the maps must rank the drivers alike
    assert auc_bf16 >= auc_fp32 - 0.05
    assert np.isfinite(bf16.transform(data.neural)).all()


def test_a_multi_session_fit_and_adapt_on_the_device_load_on_a_cpu(tmp_path, data):
    neural = [data.neural[:1500, :20], data.neural[1500:, 5:]]
    behavior = [data.behavior[:1500], data.behavior[1500:]]
    model = _model(device=DEVICE, max_steps=30).fit(neural, behavior=behavior)
    assert next(model.sessions_.parameters()).device.type == DEVICE
    index = model.adapt(data.neural[:1500, :12], behavior=data.behavior[:1500], max_steps=10, random_state=0)
    model.save(tmp_path / "sessions.xcebra")
    on_cpu = XCEBRA.load(tmp_path / "sessions.xcebra", device="cpu")
    for s, x in enumerate(neural + [data.neural[:1500, :12]]):
        np.testing.assert_allclose(on_cpu.transform(x, session=s), model.transform(x, session=s),
                                   rtol=FORWARD_RTOL, atol=FORWARD_ATOL)
    assert index == 2
