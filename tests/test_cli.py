"""The ``xcebra`` command on small generated files: fit, embed, attribute, report, and one-line errors."""

from __future__ import annotations

import datetime
import json
import subprocess
import sys

import numpy as np
import pytest

import xcebra
from xcebra.cli import build_parser, load_config, main

TINY = ["--max-steps", "4", "--batch-size", "32", "--hidden-units", "8", "--model", "offset5", "--output-dim", "4",
        "--seed", "0", "-q"]


@pytest.fixture(scope="module")
def recording():
    rng = np.random.default_rng(0)
    position = np.cumsum(rng.normal(scale=0.1, size=(300, 2)), axis=0).astype(np.float32)
    neural = (np.tanh(position @ rng.normal(size=(2, 8))) + 0.1 * rng.normal(size=(300, 8))).astype(np.float32)
    return neural, position


@pytest.fixture(scope="module")
def files(tmp_path_factory, recording):
    """The same recording as .npz, .h5 and a fitted model."""
    import h5py

    neural, position = recording
    root = tmp_path_factory.mktemp("cli")
    npz = root / "rec.npz"
    np.savez(npz, spikes=neural, pos=position, short=position[:100],
             types=np.array(["grid"] * 4 + ["place"] * 2 + ["speed"] * 2))
    h5 = root / "rec.h5"
    with h5py.File(h5, "w") as handle:
        handle["data/spikes"] = neural
        handle["behavior/pos"] = position
    model = root / "model.xcebra"
    assert main(["fit", str(npz), "--neural", "spikes", "--label", "position=pos", "--out", str(model)] + TINY) == 0
    return {"root": root, "npz": npz, "h5": h5, "model": model}


def _error_lines(capsys) -> list[str]:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return [line for line in err.splitlines() if line.startswith("xcebra: error:")]


# ---------------------------------------------------------------------------------------------- happy paths


def test_fit_writes_a_loadable_model_with_the_seed_layout(files, recording, capsys):
    model = xcebra.XCEBRA.load(files["model"])
    assert model.n_features_in_ == 8
    assert [(name, s.start, s.stop) for name, s in model.blocks_] == [("behavior", 0, 3), ("time", 3, 4)]
    assert [o.label for o in model.objectives] == ["position", None]
    assert model.max_steps == 4 and model.random_state == 0
    assert model.transform(recording[0]).shape == (300, 4)


def test_fit_is_reproducible_and_reads_h5_paths(files, tmp_path, capsys):
    out = tmp_path / "h5.xcebra"
    assert main(["fit", str(files["h5"]), "--neural", "data/spikes", "--label", "position=behavior/pos",
                 "--out", str(out)] + TINY) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    from_h5, from_npz = xcebra.XCEBRA.load(out), xcebra.XCEBRA.load(files["model"])
    for (k, a), (_, b) in zip(from_h5.encoder_.state_dict().items(), from_npz.encoder_.state_dict().items()):
        np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)


def test_fit_with_config_file_and_command_line_overrides(files, tmp_path):
    config = tmp_path / "model.toml"
    config.write_text("""
model = "offset1"
hidden_units = 8
output_dim = 5
batch_size = 16
max_steps = 50
learning_rate = 1e-3
regularizer_ramp = [1, 2]
random_state = 3

[[objectives]]
name = "pos"
dims = [0, 2]
distribution = "time_delta"
label = "position"

[[objectives]]
name = "time"
dims = [0, 5]
distribution = "time"
time_offset = 2
""")
    out = tmp_path / "cfg.xcebra"
    assert main(["fit", str(files["npz"]), "--neural", "spikes", "--label", "position=pos", "--config", str(config),
                 "--max-steps", "3", "--out", str(out), "-q"]) == 0
    model = xcebra.XCEBRA.load(out)
    assert model.max_steps == 3  # the command line wins
    assert model.random_state == 3 and model.model == "offset1" and model.regularizer_ramp == (1, 2)
    assert [(n, s.start, s.stop) for n, s in model.blocks_] == [("pos", 0, 2), ("time", 2, 5)]
    assert len(model.log_["loss"]) == 3


#: a valid, non-default value of every XCEBRA parameter as TOML text; a parameter added to XCEBRA without an entry
#: here fails test_every_parameter_round_trips_through_toml_and_param
_PARAMETER_VALUES = {
    "model": ('"offset5"', "offset5"), "hidden_units": ("12", 12), "output_dim": ("5", 5),
    "loss": ('"euclidean"', "euclidean"), "temperature": ("0.5", 0.5), "learn_temperature": ("true", True),
    "min_temperature": ("0.05", 0.05), "batch_size": ("16", 16), "max_steps": ("3", 3),
    "learning_rate": ("0.002", 0.002), "regularizer_weight": ("0.2", 0.2), "regularizer_ramp": ("[1, 2]", (1, 2)),
    "regularizer_batch_size": ('"none"', None), "regularizer_projections": ("2", 2),
    "regularizer_exact": ("true", True), "random_state": ("7", 7), "device": ('"cpu"', "cpu"),
    "num_threads": ("1", 1), "verbose": ("false", False), "precision": ('"bf16"', "bf16"),
    "lipschitz": ("2.5", 2.5), "output_clip": ("3.0", 3.0), "share_trunk": ("true", True),
}


def test_every_parameter_round_trips_through_toml_and_param(tmp_path):
    from xcebra.cli import config_parameters, parse_param_options

    assert set(config_parameters()) == set(xcebra.XCEBRA._get_param_names()) - {"objectives"}
    assert set(_PARAMETER_VALUES) == set(config_parameters())
    config = tmp_path / "all.toml"
    config.write_text("".join(f"{name} = {text}\n" for name, (text, _) in _PARAMETER_VALUES.items())
                      + '[[objectives]]\nname = "time"\ndims = [0, 5]\ndistribution = "time"\n')
    from_toml = load_config(config)
    from_param = parse_param_options([f"{name}={text}" for name, (text, _) in _PARAMETER_VALUES.items()])
    for name, (_, value) in _PARAMETER_VALUES.items():
        assert from_toml[name] == value and from_param[name] == value, name
    model = xcebra.XCEBRA(**from_toml)
    model._check_constraints()  # every value is valid for the estimator
    assert {k: v for k, v in model.get_params().items() if k != "objectives"} == {
        name: value for name, (_, value) in _PARAMETER_VALUES.items()}
    # and through a saved model's header
    neural = np.random.default_rng(0).normal(size=(200, 6)).astype(np.float32)
    model.set_params(precision="fp32", model="offset1").fit(neural)
    model.save(tmp_path / "all.xcebra")
    assert xcebra.XCEBRA.load(tmp_path / "all.xcebra").get_params()["output_clip"] == 3.0


def test_fit_takes_any_parameter_with_param(files, tmp_path):
    out = tmp_path / "p.xcebra"
    assert main(["fit", str(files["npz"]), "--neural", "spikes", "--label", "position=pos", "--out", str(out), "-q",
                 "--param", "lipschitz=2.0", "--param", "precision=bf16", "--param", "loss=euclidean"] + TINY) == 0
    model = xcebra.XCEBRA.load(out)
    assert (model.lipschitz, model.precision, model.loss, model.lipschitz_) == (2.0, "bf16", "euclidean", 2.0)


@pytest.mark.parametrize("item, message", [
    ("lipschitz", r"--param needs NAME=VALUE; got 'lipschitz'"),
    ("lipschitzz=4", r"--param has unknown key\(s\) lipschitzz; allowed: batch_size"),
    ("objectives=[]", r"--param cannot set objectives"),
])
def test_param_errors(item, message):
    from xcebra.cli import parse_param_options

    with pytest.raises(ValueError, match=message):
        parse_param_options([item])


def test_fit_resumes_from_checkpoints(files, tmp_path):
    ck = tmp_path / "ck"
    out = tmp_path / "ck.xcebra"
    args = ["fit", str(files["npz"]), "--neural", "spikes", "--label", "position=pos", "--out", str(out),
            "--checkpoint-dir", str(ck), "--checkpoint-every", "2"] + TINY
    assert main(args) == 0
    assert any(ck.iterdir())


def test_fit_without_labels_uses_only_the_time_objective(files, tmp_path):
    out = tmp_path / "time.xcebra"
    assert main(["fit", str(files["npz"]), "--neural", "spikes", "--out", str(out)] + TINY) == 0
    assert [n for n, _ in xcebra.XCEBRA.load(out).blocks_] == ["time"]


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_embed(files, recording, tmp_path, suffix, capsys):
    out = tmp_path / f"emb{suffix}"
    assert main(["embed", str(files["model"]), str(files["h5"]), "--neural", "data/spikes", "--out", str(out),
                 "--batch-size", "64"]) == 0
    expected = xcebra.XCEBRA.load(files["model"]).transform(recording[0])
    if suffix == ".npy":
        np.testing.assert_allclose(np.load(out), expected, rtol=1e-5, atol=1e-6)
    else:
        with np.load(out) as archive:
            np.testing.assert_allclose(archive["embedding"], expected, rtol=1e-5, atol=1e-6)
            assert archive["block_names"].tolist() == ["behavior", "time"]
            assert archive["block_bounds"].tolist() == [[0, 3], [3, 4]]
    assert "wrote" in capsys.readouterr().out


def test_attribute_writes_the_map_and_its_metadata(files, recording, tmp_path):
    out = tmp_path / "map.npz"
    assert main(["attribute", str(files["model"]), str(files["npz"]), "--neural", "spikes", "--method", "ing",
                 "--num-samples", "100", "--out", str(out), "-q"]) == 0
    expected = xcebra.XCEBRA.load(files["model"]).attribution_map(recording[0], method="ing", num_samples=100,
                                                                  verbose=False)
    with np.load(out, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["block_bounds", "block_names", "block_values", "method", "n_timepoints",
                                         "stderr", "values"]
        np.testing.assert_allclose(archive["values"], expected.values, rtol=1e-5)
        np.testing.assert_allclose(archive["block_values"], expected.block_values, rtol=1e-5)
        assert archive["values"].shape == archive["stderr"].shape == (4, 8)
        assert str(archive["method"]) == "ing" and int(archive["n_timepoints"]) == 100
        assert archive["block_names"].tolist() == ["behavior", "time"]


def test_attribute_ing_block_with_a_block_rank(files, recording, tmp_path):
    out = tmp_path / "ingb.npz"
    assert main(["attribute", str(files["model"]), str(files["npz"]), "--neural", "spikes", "--method", "ing-block",
                 "--block-rank", "behavior=1", "--num-samples", "50", "--out", str(out), "-q"]) == 0
    expected = xcebra.XCEBRA.load(files["model"]).attribution_map(
        recording[0], method="ing-block", block_ranks={"behavior": 1}, num_samples=50, verbose=False)
    with np.load(out, allow_pickle=False) as archive:
        np.testing.assert_allclose(archive["values"], expected.values, rtol=1e-5)
        assert archive["block_ranks"].tolist() == [1, 0] and str(archive["method"]) == "ing-block"


@pytest.mark.parametrize("extra, match", [
    (["--method", "ing", "--block-rank", "behavior=1"], "--block-rank applies to --method ing-block only"),
    (["--method", "ing-block", "--block-rank", "behavior"], "--block-rank needs BLOCK=K"),
    (["--method", "ing-block", "--block-rank", "behavior=0"], "--block-rank needs BLOCK=K"),
    (["--method", "ing-block", "--block-rank", "behavior=1", "--block-rank", "behavior=2"], "gives block 'behavior' twice"),
    (["--method", "ing-block", "--block-rank", "speed=1"], "block_ranks names block 'speed'"),
])
def test_attribute_block_rank_errors(files, tmp_path, extra, match, capsys):
    assert main(["attribute", str(files["model"]), str(files["npz"]), "--neural", "spikes", *extra,
                 "--num-samples", "5", "--out", str(tmp_path / "m.npz"), "-q"]) != 0
    assert match in capsys.readouterr().err


def test_report_with_cell_types_and_hypothesis(files, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", str(files["model"]), str(files["npz"]), "--neural", "spikes", "--label", "position=pos",
                 "--cell-types", "types", "--hypothesis", "behavior=grid,place", "--method", "ing",
                 "--method", "jacobian", "--num-samples", "100", "--out", str(out), "-q"]) == 0
    printed = capsys.readouterr().out
    assert "ing: block AUC" in printed and "jacobian: block AUC" in printed
    html = (out / "report.html").read_text()
    assert html.count("<img ") == len(list(out.glob("*.png"))) >= 8
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["hypothesis"]) == {"ing", "jacobian"}
    assert 0.0 <= summary["hypothesis"]["ing"]["block_auc"] <= 1.0
    assert set(summary["per_type"]["ing"]["behavior"]) == {"grid", "place", "speed"}
    assert set(summary["decoding"]["position"]) == {"behavior", "time"}


def test_report_adds_the_significance_section(files, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", str(files["model"]), str(files["npz"]), "--neural", "spikes", "--label", "position=pos",
                 "--cell-types", "types", "--num-samples", "100", "--significance-seeds", "2", "--out", str(out),
                 "-q"]) == 0
    html = (out / "report.html").read_text()
    assert "Which neurons drive each block (significance)" in html and "share of grid selected" in html
    assert (out / "significance_map.png").exists() and (out / "significance_intervals.png").exists()
    rows = (out / "significance" / "significance.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 8 and rows[0].endswith(",cell_type")
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["significance"]) == {"behavior", "time"}


def test_report_cell_types_from_a_text_file(files, tmp_path):
    types = tmp_path / "types.txt"
    types.write_text("\n".join(["a"] * 5 + ["b"] * 3) + "\n")
    out = tmp_path / "report"
    assert main(["report", str(files["model"]), str(files["npz"]), "--neural", "spikes", "--cell-types", str(types),
                 "--num-samples", "50", "--out", str(out), "-q"]) == 0
    assert (out / "report.html").exists() and (out / "cell_type_means_ing.png").exists()


def test_significance_writes_one_row_per_block_and_neuron_and_reuses_its_fits(files, tmp_path, capsys):
    out = tmp_path / "sig"
    argv = ["significance", str(files["npz"]), "--neural", "spikes", "--label", "position=pos", "--seeds", "2",
            "--shadows", "8", "--workers", "1", "--cell-types", "types", "--out", str(out)] + TINY
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "selected at FDR 0.05: behavior" in printed and "consistency behavior" in printed
    rows = (out / "significance.csv").read_text().splitlines()
    assert rows[0] == "block,neuron,value,ci_low,ci_high,p_value,selected,cell_type"
    assert len(rows) == 1 + 2 * 8  # two blocks (behavior, time) x 8 neurons
    assert {row.split(",")[0] for row in rows[1:]} == {"behavior", "time"}
    p_values = np.array([float(row.split(",")[5]) for row in rows[1:]])
    assert ((p_values >= 1 / 9) & (p_values <= 1)).all()  # the smallest p-value with 8 shadows is 1/9
    summary = json.loads((out / "consistency.json").read_text())
    assert set(summary["consistency"]) == {"behavior", "time"} and summary["n_seeds"] == 2
    assert (out / "significance_map.png").exists() and (out / "significance_intervals.png").exists()
    fits = sorted((out / "fits").glob("*.xcebra"))
    assert len(fits) == 2
    stamps = [f.stat().st_mtime_ns for f in fits]
    assert main(argv) == 0  # a rerun reads the two fits instead of fitting again
    assert [f.stat().st_mtime_ns for f in sorted((out / "fits").glob("*.xcebra"))] == stamps


def test_load_config_accepts_an_xcebra_table(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[xcebra]\nmax_steps = 7\n[[objectives]]\nname = "t"\ndims = [0, 3]\ndistribution = "time"\n')
    params = load_config(path)
    assert params["max_steps"] == 7
    assert params["objectives"][0] == xcebra.Objective("t", dims=(0, 3), distribution="time")


# ---------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize("make_args, message", [
    (lambda f: ["fit", str(f["npz"]), "--neural", "spikez", "--out", "m.xcebra"],
     r"xcebra: error: '.*rec\.npz' has no array 'spikez' \(for neural\); available: 'pos', 'short', 'spikes', 'types'"),
    (lambda f: ["fit", str(f["npz"]), "--neural", "spikes", "--label", "position=short", "--out", "m.xcebra"],
     r"xcebra: error: '.*rec\.npz': label 'position' \('short'\) has 100 time points but neural \('spikes'\) has 300"),
    (lambda f: ["fit", str(f["root"] / "garbage.npz"), "--neural", "spikes", "--out", "m.xcebra"],
     r"xcebra: error: cannot read '.*garbage\.npz' as a \.npz archive: it is not a zip file"),
    (lambda f: ["fit", str(f["root"] / "missing.h5"), "--neural", "spikes", "--out", "m.xcebra"],
     r"xcebra: error: cannot read '.*missing\.h5': no such file"),
    (lambda f: ["fit", str(f["h5"]), "--neural", "data", "--out", "m.xcebra"],
     r"xcebra: error: '.*rec\.h5': 'data' is a group, not a dataset"),
    (lambda f: ["fit", str(f["npz"]), "--neural", "spikes", "--label", "position=pos", "--max-steps", "0",
                "--batch-size", "1", "--out", "m.xcebra"],
     r"xcebra: error: The 'batch_size' parameter of XCEBRA must be an int >= 2\. Got 1 instead\."),
    (lambda f: ["fit", str(f["npz"]), "--neural", "spikes", "--label", "pos=", "--out", "m.xcebra"],
     r"xcebra: error: --label must be NAME=KEY"),
    (lambda f: ["fit", str(f["npz"]), "--neural", "spikes", "--label", "a=pos", "--label", "b=pos",
                "--out", "m.xcebra"], r"xcebra: error: with several labels \(a, b\) give the objectives in --config"),
    (lambda f: ["fit", str(f["npz"]), "--neural", "spikes", "--config", str(f["root"] / "bad.toml"),
                "--out", "m.xcebra"], r"xcebra: error: config '.*bad\.toml' has unknown key\(s\) max_step;"),
    (lambda f: ["embed", str(f["npz"]), str(f["npz"]), "--neural", "spikes", "--out", "e.npy"],
     r"xcebra: error: .*rec\.npz"),
    (lambda f: ["embed", str(f["model"]), str(f["npz"]), "--neural", "spikes", "--out", "e.txt"],
     r"xcebra: error: --out must end in \.npy or \.npz"),
    (lambda f: ["attribute", str(f["model"]), str(f["npz"]), "--neural", "pos", "--out", "m.npz"],
     r"xcebra: error: neural has 2 neurons but the model was fit on 8; they must match"),
    (lambda f: ["report", str(f["model"]), str(f["npz"]), "--neural", "spikes", "--cell-types", "pos",
                "--out", "r"], r"xcebra: error: --cell-types 'pos' must be a 1-D array of names"),
    (lambda f: ["report", str(f["model"]), str(f["npz"]), "--neural", "spikes", "--hypothesis", "behavior=grid",
                "--out", "r"], r"xcebra: error: --hypothesis needs --cell-types"),
    (lambda f: ["report", str(f["model"]), str(f["npz"]), "--neural", "spikes", "--cell-types", "types",
                "--hypothesis", "behavior=grid,glia", "--out", "r"],
     r"xcebra: error: hypothesis\['behavior'\] lists cell type\(s\) 'glia' that no neuron has"),
    (lambda f: ["demo", "--steps", "0", "--out", "d", "-q"], r"xcebra: error: steps must be an int >= 1; got 0$"),
])
def test_bad_inputs_exit_1_with_one_line(files, tmp_path, monkeypatch, capsys, make_args, message):
    (files["root"] / "garbage.npz").write_bytes(b"not an archive")
    (files["root"] / "bad.toml").write_text("max_step = 3\n")
    monkeypatch.chdir(tmp_path)
    assert main(make_args(files)) == 1
    lines = _error_lines(capsys)
    assert len(lines) == 1, lines
    assert __import__("re").match(message, lines[0]), lines[0]


@pytest.mark.parametrize("argv", [
    ["fit"], ["fit", "x.npz", "--out", "m"], ["attribute", "m", "d", "--neural", "x", "--method", "magic",
                                              "--out", "a.npz"],
    ["frobnicate"], [], ["demo", "--seed", "one"], ["demo", "--steps", "many"],
])
def test_usage_errors_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1].startswith("xcebra: error:")
    assert "Traceback" not in err


@pytest.mark.parametrize("command", ["demo", "fit", "fit-many", "embed", "attribute", "report", "significance",
                                     "benchmark"])
def test_help_of_every_command_shows_an_example(command, capsys):
    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    assert "example:" in out and f"xcebra {command} " in out


def test_main_help_lists_every_command(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    commands = {"demo", "fit", "fit-many", "embed", "attribute", "report", "significance", "benchmark"}
    for command in commands:
        assert command in out
    assert set(build_parser()._subparsers._group_actions[0].choices) == commands


def test_benchmark_runs_the_attribution_benchmark_of_the_library(tmp_path, monkeypatch, capsys):
    """``xcebra benchmark attribution`` (documented in xcebra.benchmark and the results pages) is a thin call."""
    import xcebra.cli.benchmark as command

    calls = []

    def fake(out, **kwargs):
        calls.append((out, kwargs))
        (out / "attribution_methods.md").write_text("| table |\n")
        return []

    monkeypatch.setattr(command, "run_attribution_benchmark", fake)
    assert main(["benchmark", "attribution", "--quick", "--seeds", "1", "--out", str(tmp_path), "-q"]) == 0
    assert calls == [(tmp_path, {"seeds": 1, "quick": True, "workers": 2, "verbose": False})]
    assert "| table |" in capsys.readouterr().out
    assert main(["benchmark", "attribution", "--seeds", "0", "--out", str(tmp_path)]) == 1
    assert "--seeds and --workers must be >= 1; got 0 and 2" in capsys.readouterr().err
    assert main(["benchmark", "speed"]) == 2


def test_debug_shows_the_traceback(files, tmp_path):
    with pytest.raises(KeyError):
        main(["fit", str(files["npz"]), "--neural", "nope", "--out", str(tmp_path / "m"), "--debug"])


def test_verbose_logs_progress_messages(files, tmp_path, capsys):
    assert main(["embed", str(files["model"]), str(files["npz"]), "--neural", "spikes", "--out",
                 str(tmp_path / "e.npy"), "-v"]) == 0
    assert "xcebra: read neural from" in capsys.readouterr().err


def test_the_installed_command_runs_as_a_process(files, tmp_path):
    """A real process: exit status and a single error line without a traceback."""
    command = [sys.executable, "-m", "xcebra.cli", "fit", str(files["npz"]), "--neural", "nope",
               "--out", str(tmp_path / "m.xcebra")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"xcebra: error: {str(files['npz'])!r} has no array 'nope' (for neural); available: 'pos', 'short', "
        "'spikes', 'types'"]


def test_fit_from_nwb(tmp_path, recording):
    pynwb = pytest.importorskip("pynwb")
    from pynwb.behavior import Position

    neural, position = recording
    nwbfile = pynwb.NWBFile(session_description="cli test", identifier="cli",
                            session_start_time=datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc))
    nwbfile.add_acquisition(pynwb.TimeSeries(name="spikes", data=neural, unit="count", rate=10.0))
    module = nwbfile.create_processing_module("behavior", "tracking")
    pos = Position(name="Position")
    pos.create_spatial_series(name="xy", data=position, reference_frame="corner", rate=10.0)
    module.add(pos)
    path = tmp_path / "rec.nwb"
    with pynwb.NWBHDF5IO(str(path), "w") as io:
        io.write(nwbfile)
    out = tmp_path / "nwb.xcebra"
    assert main(["fit", str(path), "--neural", "spikes", "--label", "position=Position/xy", "--out", str(out)]
                + TINY) == 0
    emb = tmp_path / "e.npy"
    assert main(["embed", str(out), str(path), "--neural", "acquisition/spikes", "--out", str(emb)]) == 0
    assert np.load(emb).shape == (300, 4)


# ---------------------------------------------------------------------------------------------- fit-many
_MODEL_TABLE = """
[model]
model = "offset5"
output_dim = 4
hidden_units = 8
batch_size = 32
max_steps = 4
random_state = 0
num_threads = 1
[[model.objectives]]
name = "behavior"
dims = [0, 3]
distribution = "time_delta"
label = "position"
[[model.objectives]]
name = "time"
dims = [0, 4]
distribution = "time"
time_offset = 10
"""


def _manifest(root, entries, head='out_dir = "models"\n'):
    fits = "".join(f'[[fit]]\ndata = "{data}"\nneural = "spikes"\nlabels = {{ position = "pos" }}\n' for data in entries)
    path = root / "sessions.toml"
    path.write_text(head + _MODEL_TABLE + fits)
    return path


def test_fit_many_fits_each_recording_and_a_rerun_reads_them(files, recording, tmp_path):
    """The installed command (Dask workers are spawned processes): a failed fit is reported per job, the
    finished models are kept, and a rerun reads them instead of fitting again."""
    neural, position = recording
    np.savez(tmp_path / "a.npz", spikes=neural, pos=position)
    np.savez(tmp_path / "b.npz", spikes=neural[:250], pos=position[:250])
    command = [str(__import__("pathlib").Path(sys.executable).with_name("xcebra")), "fit-many",
               str(_manifest(tmp_path, ["a.npz", "b.npz", "missing.npz"])), "--workers", "1", "-q"]
    failed = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert failed.returncode == 1, failed.stderr[-2000:]
    errors = [line for line in failed.stderr.splitlines() if line.startswith("xcebra: error:")]
    assert errors[0].startswith("xcebra: error: 1 of 3 fits failed; the 2 finished models are in")
    assert "job 2: ValueError" in errors[1] and "missing.npz" in errors[1]
    index = json.loads((tmp_path / "models" / "index.json").read_text())
    assert sorted(v["neural"].rsplit("/", 1)[-1] for v in index.values()) == ["a.npz['spikes']", "b.npz['spikes']"]
    command[2] = str(_manifest(tmp_path, ["a.npz", "b.npz"]))
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    lines = again.stdout.splitlines()
    assert len(lines) == 3 and all("(read (already fitted))" in line for line in lines[:2])
    params = xcebra.cli.load_manifest(tmp_path / "sessions.toml")[0]
    for line, (n, p) in zip(lines, [(neural, position), (neural[:250], position[:250])]):
        written = xcebra.XCEBRA.load(line.split(" -> ")[1].split(" (")[0])
        expected = xcebra.XCEBRA(**params, verbose=False).fit(n, position=p)
        for name, tensor in expected.encoder_.state_dict().items():
            assert torch_equal(written.encoder_.state_dict()[name], tensor)


def torch_equal(a, b) -> bool:
    import torch
    return bool(torch.equal(a, b))


def test_load_manifest_resolves_paths_and_reads_a_config_file(files, tmp_path):
    (tmp_path / "model.toml").write_text(_MODEL_TABLE.replace("[model]", "").replace("model.objectives", "objectives"))
    path = _manifest(tmp_path, ["a.npz"], head='config = "model.toml"\nretries = 5\n')
    path.write_text(path.read_text().replace(_MODEL_TABLE, ""))
    params, jobs, settings = xcebra.cli.load_manifest(path)
    assert params["max_steps"] == 4 and [o.name for o in params["objectives"]] == ["behavior", "time"]
    assert jobs == [{"neural": (str(tmp_path / "a.npz"), "spikes"), "position": (str(tmp_path / "a.npz"), "pos")}]
    assert settings == {"out_dir": str(tmp_path / "models"), "retries": 5}


@pytest.mark.parametrize("text, message", [
    ('out_dir = "m"\nworkers = 3\n' + _MODEL_TABLE, "has unknown key(s) workers"),
    ('out_dir = "m"\n[[fit]]\ndata = "a.npz"\nneural = "spikes"\n', "has no model"),
    ('config = "model.toml"\n' + _MODEL_TABLE, "either as config = FILE or as a [model] table"),
    (_MODEL_TABLE, "needs one [[fit]] table per recording"),
    (_MODEL_TABLE + '[[fit]]\ndata = "a.npz"\n', "fit[0] needs neural"),
    (_MODEL_TABLE + '[[fit]]\ndata = "a.npz"\nneural = "s"\nlabels = { position = 3 }\n', "fit[0].labels must be"),
    (_MODEL_TABLE + '[[fit]]\ndata = "a.npz"\nneural = "s"\nlabels = { neural = "x" }\n', "'neural' is reserved"),
    (_MODEL_TABLE.replace('max_steps = 4', 'max_stepz = 4') + '[[fit]]\ndata = "a"\nneural = "s"\n',
     "[model] has unknown key(s) max_stepz"),
])
def test_fit_many_manifest_errors_exit_1_with_one_line(tmp_path, capsys, text, message):
    path = tmp_path / "sessions.toml"
    path.write_text(text)
    assert main(["fit-many", str(path), "-q"]) == 1
    (line,) = _error_lines(capsys)
    assert "sessions.toml" in line and message in line


def test_slurm_arguments_are_typed():
    from xcebra.cli import _slurm_arguments
    assert _slurm_arguments(["cores=4", "memory=16GB", "walltime=02:00:00", "processes=1", "death_timeout=60.5"]) == {
        "cores": 4, "memory": "16GB", "walltime": "02:00:00", "processes": 1, "death_timeout": 60.5}
    with pytest.raises(ValueError, match="--slurm takes KEY=VALUE"):
        _slurm_arguments(["cores"])


def test_fit_many_scheduler_and_slurm_exclude_each_other(tmp_path, capsys):
    assert main(["fit-many", "m.toml", "--scheduler", "tcp://127.0.0.1:1", "--slurm", "cores=1"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------- sessions manifests
def _write_sessions(root, recording, counts=(8, 6, 7)):
    """Three sessions of the same position with different neuron counts, as .npz files, and their manifest."""
    neural, position = recording
    rng = np.random.default_rng(5)
    lines = []
    for s, n in enumerate(counts):
        x = (np.tanh(position @ rng.normal(size=(2, n))) + 0.1 * rng.normal(size=(300, n))).astype(np.float32)
        np.savez(root / f"rat{s}.npz", spikes=x, pos=position, types=np.array(["grid", "place"] * (n // 2) + ["speed"] * (n % 2)))
        lines.append(f'[[session]]\ndata = "rat{s}.npz"\nneural = "spikes"\nlabels = {{ position = "pos" }}\n'
                     f'cell_types = "types"\n')
    manifest = root / "sessions.toml"
    manifest.write_text("\n".join(lines))
    return manifest


def test_fit_on_a_sessions_manifest_then_embed_attribute_and_report_per_session(tmp_path, recording, capsys):
    manifest = _write_sessions(tmp_path, recording)
    out = tmp_path / "multi.xcebra"
    assert main(["fit", str(manifest), "--out", str(out)] + TINY) == 0
    assert "3 sessions (300 x 8, 300 x 6, 300 x 7" in capsys.readouterr().out
    model = xcebra.XCEBRA.load(out)
    assert model.n_features_in_ == (8, 6, 7)
    assert main(["embed", str(out), str(tmp_path / "rat1.npz"), "--neural", "spikes", "--session", "1",
                 "--out", str(tmp_path / "z1.npy"), "-q"]) == 0
    x1 = np.load(tmp_path / "rat1.npz")["spikes"]
    np.testing.assert_allclose(np.load(tmp_path / "z1.npy"), model.transform(x1, session=1), atol=1e-6)
    assert main(["attribute", str(out), str(tmp_path / "rat2.npz"), "--neural", "spikes", "--session", "2",
                 "--method", "jacobian", "--out", str(tmp_path / "m2.npz"), "-q"]) == 0
    assert np.load(tmp_path / "m2.npz")["values"].shape == (4, 7)
    report = tmp_path / "report"
    assert main(["report", str(out), str(manifest), "--hypothesis", "behavior=grid,place", "--method", "jacobian",
                 "--out", str(report), "-q"]) == 0
    summary = json.loads((report / "summary.json").read_text())
    assert len(summary["sessions"]) == 3 and np.asarray(summary["consistency"]["position"]).shape == (3, 3)
    assert (report / "consistency_position.png").exists() and (report / "session2_training_log.png").exists()
    assert "Consistency across sessions" in (report / "report.html").read_text()


@pytest.mark.parametrize("extra, message", [
    (["--neural", "spikes"], "is a sessions manifest, which names each session's arrays"),
    (["--label", "position=pos"], "drop --neural and --label"),
])
def test_fit_on_a_manifest_refuses_per_file_options(tmp_path, recording, capsys, extra, message):
    manifest = _write_sessions(tmp_path, recording)
    assert main(["fit", str(manifest), "--out", str(tmp_path / "m.xcebra")] + extra + TINY) == 1
    (line,) = _error_lines(capsys)
    assert message in line


@pytest.mark.parametrize("text, message", [
    ('[[session]]\ndata = "a.npz"\n', "session[0] needs neural"),
    ('color = 1\n[[session]]\ndata = "a.npz"\nneural = "s"\n', "unknown key(s) color"),
    ('[[session]]\ndata = "a.npz"\nneural = "s"\nlabels = { position = "p" }\n[[session]]\ndata = "b.npz"\n'
     'neural = "s"\n', "session[1] names labels [] but session[0] names ['position']"),
    ('x = 1\n', "unknown key(s) x"),
    ('config = "m.toml"\n', "needs one [[session]] table per recording"),
])
def test_sessions_manifest_errors_exit_1_with_one_line(tmp_path, capsys, text, message):
    (tmp_path / "m.toml").write_text("[[objectives]]\nname = 'time'\ndims = [0, 4]\ndistribution = 'time'\n")
    path = tmp_path / "sessions.toml"
    path.write_text(text)
    assert main(["fit", str(path), "--out", str(tmp_path / "x.xcebra"), "-q"]) == 1
    (line,) = _error_lines(capsys)
    assert "sessions.toml" in line and message in line


def test_fit_without_neural_on_a_single_file_says_what_is_missing(files, capsys):
    assert main(["fit", str(files["npz"]), "--out", "x.xcebra", "-q"]) == 2
    assert "xcebra: error: --neural KEY is required" in capsys.readouterr().err
