"""The demo end to end in a tiny configuration, run through ``xcebra demo``: files, summary and report."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import io
import json
import re

import numpy as np
import pytest

pytest.importorskip("ratinabox")

import xcebra  # noqa: E402
from xcebra.sampling import label_autocorrelation_time  # noqa: E402
from xcebra import demo  # noqa: E402
from xcebra.cli import main  # noqa: E402

EXPECTED_FIGURES = {
    "raster", "trajectory", "training_log", "embedding_position_x", "embedding_position_y", "attribution_ing",
    "attribution_ing-block", "attribution_jacobian", "block_map_ing", "block_map_ing-block", "block_map_jacobian",
    "ground_truth", "ground_truth_seed_style", "cell_type_means_ing", "cell_type_means_ing-block",
    "cell_type_means_jacobian", "method_comparison",
}
CELL_TYPES = {"grid", "head_direction", "place", "speed"}


def tiny_config(cache_dir) -> demo.DemoConfig:
    return dataclasses.replace(demo.PRESETS["tiny"], cache=str(cache_dir))


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """``xcebra demo --quick --out DIR`` with the tiny preset substituted (same code path as the CLI)."""
    root = tmp_path_factory.mktemp("demo")
    out = root / "out"
    real = demo.run_demo
    config = tiny_config(root / "cache")
    calls = []

    def tiny_run(out_dir, **kwargs):
        calls.append(kwargs)
        return real(out_dir, **kwargs, _config=config)

    stdout, stderr = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(demo, "run_demo", tiny_run)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            status = main(["demo", "--quick", "--out", str(out), "--seed", "3", "-q"])
    assert status == 0, stderr.getvalue()
    assert calls == [{"quick": True, "verbose": False, "seed": 3, "precision": "auto", "steps": None,
                      "significance_seeds": 0}]
    summary = json.loads((out / "summary.json").read_text())
    return {"out": out, "stdout": stdout.getvalue(), "summary": summary}


def test_all_output_files_exist(demo_run):
    out = demo_run["out"]
    names = {p.name for p in out.iterdir()}
    assert {"report.html", "summary.json", "model.xcebra"} <= names
    assert {p.stem for p in out.glob("*.png")} == EXPECTED_FIGURES
    assert not [n for n in names if n.endswith(".tmp")]  # atomic writes leave nothing behind
    for png in out.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert set(demo_run["summary"]["files"]["figures"]) == {f"{n}.png" for n in EXPECTED_FIGURES}


def test_summary_json_keys_and_value_ranges(demo_run):
    s = demo_run["summary"]
    assert {"config", "data", "blocks", "decoding", "attribution", "auc", "timings", "training", "hypotheses",
            "files", "mode", "seed", "xcebra_version", "headline_method"} <= set(s)
    assert s["seed"] == 3 and s["mode"] == "custom"
    assert s["config"]["max_steps"] == 30 and s["config"]["methods"] == ["ing-block", "ing", "jacobian"]
    assert s["data"]["n_neurons"] == 18 and s["data"]["n_timepoints"] == 1200
    assert s["data"]["cell_types"] == {"grid": 6, "head_direction": 4, "place": 4, "speed": 4}
    assert s["blocks"] == [["behavior", 0, 4], ["time", 4, 14]]
    for block in ("behavior", "time"):
        scores = s["decoding"][block]
        assert set(scores) == {"linear_r2", "knn_r2", "linear_r2_train"}
        assert all(np.isfinite(v) and v <= 1.0 for v in scores.values())
        assert 0.0 <= scores["linear_r2_train"] <= 1.0  # in-sample least squares cannot do worse than the mean
    assert [row["method"] for row in s["auc"]] == ["ing-block", "ing", "jacobian"]
    assert s["headline_method"] == "ing-block"
    for row in s["auc"]:
        for key in ("block_auc", "entry_auc", "seed_pooled_entry_auc", "seed_time_block_auc"):
            assert 0.0 <= row[key] <= 1.0, (key, row)
    for method, res in s["attribution"].items():
        assert res["hypothesis"] == {"behavior": ["grid", "place"]}
        assert res["seed_style"]["hypothesis"] == {"behavior": ["grid", "place"], "time": ["head_direction", "speed"]}
        assert set(res["per_type"]) == {"behavior", "time"}
        for means in res["per_type"].values():
            assert set(means) == CELL_TYPES and all(v >= 0 for v in means.values())
        assert res["block_auc"] == res["per_block_auc"]["behavior"]
        assert res["n_timepoints"] == 300
    assert set(s["timings"]) >= {"data", "fit", "embedding", "decoding", "attribution_ing", "attribution_jacobian",
                                 "figures", "report", "total"}
    assert all(v >= 0 for v in s["timings"].values())
    assert s["timings"]["total"] >= s["timings"]["fit"]
    assert set(s["training"]["final"]) >= {"loss", "loss/behavior", "loss/time"}


def test_summary_numbers_agree_with_an_independent_computation(demo_run):
    """Recompute the block AUC and the pooled seed-style AUC from the saved model."""
    from sklearn.metrics import roc_auc_score

    import xcebra
    from xcebra.datasets.ratinabox import ratinabox

    s = demo_run["summary"]
    params = s["data"]["params"]
    data = ratinabox(**params, cache=s["config"]["cache"])
    model = xcebra.XCEBRA.load(demo_run["out"] / "model.xcebra")
    amap = model.attribution_map(data.spikes, method="ing", num_samples=300, batch_size=256, verbose=False)
    types = data.cell_types
    behaviour_truth = np.isin(types, ["grid", "place"])
    rms = np.sqrt(np.mean(amap.values[0:4] ** 2, axis=0))
    assert s["attribution"]["ing"]["block_auc"] == pytest.approx(roc_auc_score(behaviour_truth, rms), abs=1e-9)
    truth = np.vstack([np.tile(behaviour_truth, (4, 1)), np.tile(np.isin(types, ["head_direction", "speed"]), (10, 1))])
    assert s["attribution"]["ing"]["seed_style"]["entry_auc"] == pytest.approx(
        roc_auc_score(truth.ravel(), amap.values.ravel()), abs=1e-9)


def test_report_embeds_every_figure_as_a_decodable_png(demo_run):
    from matplotlib.image import imread

    html = (demo_run["out"] / "report.html").read_text()
    sources = re.findall(r'<img src="([^"]+)"', html)
    assert len(sources) == len(EXPECTED_FIGURES)
    for source in sources:
        assert source.startswith("data:image/png;base64,")
        raw = base64.b64decode(source.split(",", 1)[1], validate=True)
        image = imread(io.BytesIO(raw), format="png")
        assert image.shape[0] > 100 and image.shape[1] > 100
        assert np.ptp(image[..., :3]) > 0  # not a blank image


def test_report_states_the_hypothesis_per_block_and_the_seed_comparison(demo_run):
    html = (demo_run["out"] / "report.html").read_text()
    for heading in ("Overview", "Data", "Training", "Embedding and decoding", "Attribution maps",
                    "Mean attribution per cell type and block", "Hypothesis test, per block",
                    "Why the seed&#x27;s per-entry AUC was low", "Timings"):
        assert f"<h2>{heading}</h2>" in html, heading
    assert "Scored hypothesis: behaviour block &lt;- grid and place cells" in html
    assert "seed-style pooled entry AUC (comparison only)" in html
    assert "The time part of that hypothesis is" in html


def test_cli_prints_the_summary_table(demo_run):
    printed = demo_run["stdout"]
    s = demo_run["summary"]
    assert "Decoding position from each block" in printed
    assert re.search(r"behavior\s+0:4\s+" + re.escape(f"{s['decoding']['behavior']['linear_r2']:.3f}"), printed)
    assert "seed-style pooled AUC*" in printed
    for row in s["auc"]:
        assert re.search(rf"{row['method']}\s+{row['block_auc']:.3f}\s+{row['entry_auc']:.3f}\s+"
                         rf"{row['seed_pooled_entry_auc']:.3f}", printed)
    assert "Mean attribution per cell type (ing" in printed
    assert "wrote " in printed and "report.html" in printed
    assert printed == printed.strip("\n") + "\n"


def test_format_summary_matches_the_printed_table(demo_run):
    assert demo.format_summary(demo_run["summary"]) in demo_run["stdout"]
    assert "Headline map: ing-block (the ING per block" in demo_run["stdout"]
    other = dict(demo_run["summary"], headline_method="jacobian")
    assert "Headline map: jacobian\n" in demo.format_summary(other) + "\n"
    older = {k: v for k, v in demo_run["summary"].items() if k != "headline_method"}  # summaries written before it
    assert "Headline map" not in demo.format_summary(older)


def test_presets_follow_the_seed_and_quick_is_shorter():
    default, quick = demo.PRESETS["default"], demo.PRESETS["quick"]
    assert (default.duration, default.batch_size, default.max_steps) == (2000.0, 2500, 1000)
    assert default.learning_rate == 3e-4
    assert default.regularizer_ramp == (250, 500) and default.regularizer_weight == 0.1
    assert (default.model, default.hidden_units, default.output_dim, default.behavior_dims) == ("offset10", 256, 14,
                                                                                                (0, 4))
    assert default.num_samples is None and default.methods == ("ing-block", "ing", "jacobian")
    assert quick.duration < default.duration and quick.max_steps < default.max_steps


@pytest.mark.parametrize("config, error, message", [
    ("huge", ValueError, r"_config must be one of 'default', 'quick', 'tiny'"),
    ({"max_step": 3}, ValueError, r"_config has unknown field\(s\) \['max_step'\]"),
    (3, TypeError, r"_config must be a preset name, a DemoConfig or a dict of overrides; got int"),
])
def test_bad_private_config(tmp_path, config, error, message):
    with pytest.raises(error, match=message):
        demo.run_demo(tmp_path, _config=config)


@pytest.mark.parametrize("native, cuda, expected", [(True, False, "bf16"), (False, False, "fp32"),
                                                     (True, True, "fp32")])
def test_auto_precision_uses_bf16_only_on_cpus_with_native_bf16(monkeypatch, native, cuda, expected):
    import torch
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: native)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    assert demo.training_precision("auto") == expected
    assert demo.training_precision("fp32") == "fp32" and demo.training_precision("bf16") == "bf16"
    with pytest.raises(ValueError, match="precision must be one of 'auto', 'fp32', 'bf16'; got 'fp16'"):
        demo.training_precision("fp16")


def test_summary_records_the_precision_used(demo_run):
    assert demo_run["summary"]["config"]["precision"] == "auto"
    assert demo_run["summary"]["precision"] == demo.training_precision("auto")


@pytest.mark.parametrize("steps, ramp", [(2000, (500, 1000)), (1000, (250, 500)), (100, (25, 50)), (3, (1, 2)),
                                         (1, None)])
def test_with_steps_scales_the_seed_ramp(steps, ramp):
    config = demo.with_steps(demo.PRESETS["default"], steps)
    assert config.max_steps == steps and config.regularizer_ramp == ramp
    assert demo.with_steps(demo.PRESETS["quick"], 50).regularizer_ramp == "auto"  # resolved from max_steps by fit


@pytest.mark.parametrize("steps", [0, -5, 2.5, True])
def test_with_steps_rejects_bad_values(steps):
    with pytest.raises(ValueError, match=r"steps must be an int >= 1; got"):
        demo.with_steps(demo.PRESETS["default"], steps)


def test_steps_reach_the_fit_and_the_summary(tmp_path):
    summary = demo.run_demo(tmp_path, verbose=False, steps=12, _config=tiny_config(tmp_path / "cache"))
    assert summary["config"]["max_steps"] == 12 and summary["mode"] == "custom, 12 steps"
    assert summary["training"]["steps"] == 12


@pytest.mark.parametrize("separation", [None, 3])
def test_behaviour_min_separation_reaches_the_model_and_the_report(tmp_path, separation):
    config = dataclasses.replace(tiny_config(tmp_path / "cache"), behavior_min_separation=separation)
    summary = demo.run_demo(tmp_path, verbose=False, steps=2, _config=config)
    model = xcebra.XCEBRA.load(tmp_path / "model.xcebra")
    position = demo.simulate(config).position
    window, left = model.encoder_.window, model.encoder_.left
    n_valid = len(position) - window + 1
    if separation is None:  # the window or the position's autocorrelation time, whichever is longer
        expected = max(window, min(label_autocorrelation_time(position[left:left + n_valid]), n_valid // 8))
        described = f"each at least {expected} time points from its reference: the larger of the encoder window"
    else:
        expected, described = separation, f"each at least {separation} time points from its reference"
    assert model.min_separation_ == {"behavior": expected}
    assert summary["config"]["behavior_min_separation"] == separation
    assert described in (tmp_path / "report.html").read_text()


def test_config_overrides_apply_on_top_of_the_chosen_preset():
    mode, config = demo._resolve_config(True, {"max_steps": 7})
    assert mode == "quick+overrides" and config.max_steps == 7
    assert config.duration == demo.PRESETS["quick"].duration


@pytest.mark.slow
def test_quick_demo_decodes_position_from_the_behaviour_block(tmp_path):
    summary = demo.run_demo(tmp_path, quick=True, verbose=False)
    assert summary["decoding"]["behavior"]["knn_r2"] > 0.7
    assert summary["attribution"]["jacobian"]["block_auc"] > 0.7


def test_demo_significance_section_and_real_trajectory(tmp_path):
    # the tiny preset on the real rat's path, with the significance section over two fits
    config = dataclasses.replace(tiny_config(tmp_path / "cache"), trajectory="sargolini")
    summary = demo.run_demo(tmp_path, verbose=False, steps=4, significance_seeds=2, _config=config)
    assert summary["config"]["trajectory"] == "sargolini"
    position = demo.simulate(config).position
    raw = xcebra.datasets.ratinabox(duration=config.duration, dt=config.dt, trajectory="sargolini", cache=False,
                                    n_grid=1, n_head_direction=0, n_place=0, n_speed=0, grid_modules=1).position
    np.testing.assert_array_equal(position, raw)  # the path does not depend on the cells
    assert set(summary["significance"]["selected"]) == {"behavior", "time"}
    assert summary["significance"]["n_seeds"] == 2 and "significance" in summary["timings"]
    html = (tmp_path / "report.html").read_text()
    assert "Which neurons drive each block (significance)" in html
    rows = (tmp_path / "significance" / "significance.csv").read_text().splitlines()
    assert rows[0] == "block,neuron,value,ci_low,ci_high,p_value,selected,cell_type"
    assert len(rows) == 1 + 2 * len(demo.simulate(config).cell_types)
