"""Property-based checks of the front door: input validation, the block layout of objectives and the
indices sampled during ``fit``. Each property compares the library with an independent oracle written
here, and every failure must be a ``ValueError`` (or ``TypeError`` for non-numbers), never anything else.

``tests/test_sampling.py`` already checks the samplers on their own (any domain, offsets and labels);
here the whole ``fit`` path is exercised: the estimator's own domain, window and offset arithmetic.
"""

from __future__ import annotations

from datetime import timedelta
from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from xcebra import Objective, XCEBRA
from xcebra.data import TimeSeries
from xcebra.sampling import BatchSampler

WINDOWS = {"offset1": (1, 0), "offset5": (5, 2), "offset10": (10, 5)}  # window, left


# --- block layout ---------------------------------------------------------------------------------

@st.composite
def _nested(draw, start, stop, depth=0):
    """Slices that are disjoint or nested (a laminar family) inside [start, stop), the whole range included."""
    slices = [(start, stop)]
    if depth < 2 and stop - start >= 2 and draw(st.booleans()):
        cuts = sorted(draw(st.sets(st.integers(start + 1, stop - 1), max_size=2)))
        bounds = [start, *cuts, stop]
        for a, b in zip(bounds, bounds[1:]):
            if draw(st.booleans()):
                slices += [s for s in draw(_nested(a, b, depth + 1)) if s != (start, stop)]
    return slices


@st.composite
def _objective_sets(draw):
    """Mostly well-formed slice sets (valid or subtly invalid: a middle child, mixed losses), plus random ones."""
    output_dim = draw(st.integers(1, 8))
    if draw(st.booleans()):
        cuts = sorted(draw(st.sets(st.integers(1, output_dim - 1), max_size=2))) if output_dim > 1 else []
        bounds = [0, *cuts, output_dim]
        dims = [s for a, b in zip(bounds, bounds[1:]) for s in draw(_nested(a, b))]
        dims = list(dict.fromkeys(dims))[:6]
        if draw(st.integers(0, 3)) == 0:  # nudge one end: a gap, a partial overlap, a duplicate or an overflow
            i = draw(st.integers(0, len(dims) - 1))
            a, b = dims[i]
            b = max(a + 1, b + draw(st.sampled_from([-1, 1])))
            dims[i] = (a, b)
    else:
        dims = []
        for _ in range(draw(st.integers(1, 5))):
            a = draw(st.integers(0, output_dim + 1))
            dims.append((a, draw(st.integers(a + 1, output_dim + 2))))
    objectives = [Objective(f"o{i}", dims=d, distribution="time",
                            loss=draw(st.sampled_from([None, None, None, "cosine", "euclidean"])))
                  for i, d in enumerate(dims)]
    return objectives, output_dim, draw(st.sampled_from(["cosine", "euclidean"]))


def _expected_layout(objectives, output_dim, default_loss):
    """The layout the rules imply, computed directly; None if the rules reject it."""
    dims = [o.dims for o in objectives]
    loss = [o.loss or default_loss for o in objectives]
    if any(stop > output_dim for _, stop in dims) or len(set(dims)) != len(dims):
        return None
    for i, (a0, a1) in enumerate(dims):
        for j, (b0, b1) in enumerate(dims[:i]):
            overlap = a0 < b1 and b0 < a1
            nested = (a0 <= b0 and b1 <= a1) or (b0 <= a0 and a1 <= b1)
            if overlap and (not nested or loss[i] != loss[j]):
                return None
    owners = []
    for d in range(output_dim):
        covering = [i for i, (a, b) in enumerate(dims) if a <= d < b]
        if not covering:
            return None
        owners.append(min(covering, key=lambda i: dims[i][1] - dims[i][0]))  # the narrowest (they are nested)
    runs = []
    for d, owner in enumerate(owners):
        if runs and runs[-1][0] == owner:
            runs[-1][2] = d + 1
        else:
            runs.append([owner, d, d + 1])
    if len({owner for owner, _, _ in runs}) != len(runs):
        return None  # an objective would own two separate blocks
    blocks = [(objectives[o].name, slice(a, b)) for o, a, b in runs]
    normalized = [loss[o] == "cosine" for o, _, _ in runs]
    coverage = tuple(sum(a <= d < b for a, b in dims) for d in range(output_dim))
    return blocks, normalized, coverage


@settings(max_examples=400, deadline=timedelta(seconds=5), suppress_health_check=[HealthCheck.too_slow])
@given(_objective_sets())
def test_block_layout_partitions_the_embedding_or_raises_value_error(case):
    objectives, output_dim, default_loss = case
    expected = _expected_layout(objectives, output_dim, default_loss)
    event("valid layout" if expected else "rejected layout")
    model = XCEBRA(objectives, output_dim=output_dim, loss=default_loss)
    if expected is None:
        with pytest.raises(ValueError):
            model._validate_params()
        return
    layout = model._validate_params()
    assert (layout.blocks, layout.normalized, layout.coverage) == expected
    # and, restated: the blocks partition 0..output_dim, each owned by the narrowest objective covering it
    assert layout.blocks[0][1].start == 0 and layout.blocks[-1][1].stop == output_dim
    assert all(a[1].stop == b[1].start for a, b in zip(layout.blocks, layout.blocks[1:]))
    by_name = {o.name: o for o in objectives}
    for name, block in layout.blocks:
        for d in range(block.start, block.stop):
            covering = [o for o in objectives if o.dims[0] <= d < o.dims[1]]
            assert by_name[name] in covering
            assert all(o.dims[1] - o.dims[0] > by_name[name].dims[1] - by_name[name].dims[0]
                       for o in covering if o is not by_name[name])


@settings(max_examples=30, deadline=timedelta(seconds=5))
@given(output_dim=st.sampled_from([10 ** 6, 10 ** 9, 10 ** 15]), stop=st.integers(1, 8))
def test_an_output_dim_beyond_the_objectives_fails_at_once(output_dim, stop):
    with pytest.raises(ValueError, match=f"embedding dims {stop}..{output_dim - 1} are not covered"):
        XCEBRA([Objective("t", dims=(0, stop), distribution="time")], output_dim=output_dim)._validate_params()


# --- indices drawn during fit ---------------------------------------------------------------------

@st.composite
def _fit_cases(draw):
    model = draw(st.sampled_from(sorted(WINDOWS)))
    window = WINDOWS[model][0]
    offset = draw(st.integers(1, 20))
    # around the boundaries that matter: the window alone, the window plus the offset, and beyond
    T = draw(st.one_of(st.integers(1, 12), st.integers(-3, 3).map(lambda d: max(1, window + offset + d)),
                       st.integers(window + offset, 150), st.integers(window + offset + 8, 150)))
    batch = draw(st.one_of(st.integers(2, 8), st.integers(2, 48)))
    kind = draw(st.sampled_from(["time_delta", "delta_normal", "discrete", None]))
    seed = draw(st.integers(0, 2 ** 16))
    rng = np.random.default_rng(seed)
    option = draw(st.integers(1, 6))
    if kind == "discrete":
        label = rng.integers(0, draw(st.integers(1, 4)), size=T)
    else:
        label = np.cumsum(rng.normal(size=(T, 2)), axis=0)
    return model, T, offset, batch, kind, option, label, seed


def _expected_fit_error(model, T, offset, batch, kind, option, label):
    """Why fit must refuse, from the window and offsets alone (None: it must work)."""
    window, left = WINDOWS[model]
    if T < window + 1:
        return "and at least one more time point"
    if T < window + offset:
        return f"pairs time point t with t \\+ {offset}"
    if kind in ("time_delta", "delta_normal") and T - window + 1 < 2 * window:
        return f"with min_separation={window} needs at least {2 * window} valid time points"
    if kind == "time_delta" and T <= option:
        return f"time_delta={option} needs more than"
    if kind == "discrete":
        _, counts = np.unique(label[left:T - (window - left) + 1], return_counts=True)
        if (counts == 1).any():
            return "occur at only one valid time point"
    if batch > T - window + 1 - offset:
        return "The 'batch_size' parameter of XCEBRA must be at most the number of usable reference time points"
    return None


@settings(max_examples=80, deadline=timedelta(seconds=5), suppress_health_check=[HealthCheck.too_slow])
@given(_fit_cases())
def test_fit_samples_only_valid_indices_or_refuses_with_value_error(case):
    model_name, T, offset, batch, kind, option, label, seed = case
    window, left = WINDOWS[model_name]
    objectives = [Objective("time", dims=(0, 4), distribution="time", time_offset=offset)]
    labels = {}
    if kind is not None:
        options = {"time_delta": {"time_delta": option}, "delta_normal": {"delta": 0.1 * option}}.get(kind, {})
        objectives.insert(0, Objective("aux", dims=(0, 2), distribution=kind, label="label", **options))
        labels["label"] = label
    neural = np.random.default_rng(seed).normal(size=(T, 3)).astype(np.float32)
    model = XCEBRA(objectives, model=model_name, hidden_units=4, output_dim=4, batch_size=batch, max_steps=2,
                   regularizer_weight=0.0, random_state=seed, verbose=False)
    expected = _expected_fit_error(model_name, T, offset, batch, kind, option, label)
    event(f"refused: {expected[:40]}" if expected else "fitted")  # see --hypothesis-show-statistics
    drawn = []
    real_sample = BatchSampler.sample

    def recording_sample(self):
        index = real_sample(self)
        drawn.append(index)
        return index

    with mock.patch.object(BatchSampler, "sample", recording_sample):
        if expected is not None:
            with pytest.raises(ValueError, match=expected):
                model.fit(neural, **labels)
            return
        model.fit(neural, **labels)
    assert len(drawn) == 2
    first, last = left, T - (window - left)  # valid: the whole window t - left .. t + right - 1 is recorded
    for index in drawn:
        reference = index.reference.numpy()
        assert len(reference) == batch
        assert reference.min() >= first and reference.max() <= last - offset
        assert index.negative.min() >= first and index.negative.max() <= last
        for positive in index.positives:
            assert positive.min() >= first and positive.max() <= last
        np.testing.assert_array_equal(index.positives[-1].numpy(), reference + offset)
        if kind == "discrete":
            np.testing.assert_array_equal(label[index.positives[0].numpy()], label[reference])
        if kind in ("time_delta", "delta_normal"):  # no input frame shared with the reference
            assert (np.abs(index.positives[0].numpy() - reference) >= window).all()


# --- input validation -----------------------------------------------------------------------------

@st.composite
def _inputs(draw):
    shape = tuple(draw(st.lists(st.integers(0, 6), min_size=1, max_size=3)))
    neural = draw(st.sampled_from([np.float64, np.float32, np.int32]))
    neural = np.random.default_rng(0).normal(size=shape).astype(neural)
    if neural.dtype.kind == "f" and neural.size and draw(st.booleans()):
        for _ in range(draw(st.integers(1, 3))):
            neural.flat[draw(st.integers(0, neural.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
    rows = shape[0] + draw(st.sampled_from([0, 0, 0, -1, 1]))
    label = np.random.default_rng(1).normal(size=(max(rows, 0), draw(st.integers(1, 2))))
    if label.size and draw(st.booleans()):
        label.flat[draw(st.integers(0, label.size - 1))] = np.nan
    return neural, label


def _first_bad(array):
    bad = np.argwhere(~np.isfinite(array))
    return tuple(int(i) for i in bad[0]) if len(bad) else None


@settings(max_examples=200, deadline=timedelta(seconds=2))
@given(_inputs())
def test_validation_names_the_argument_and_locates_the_problem(case):
    neural, label = case
    try:
        TimeSeries.from_arrays(neural, position=label)
    except ValueError as error:
        message = str(error)
    else:
        message = None
    if neural.ndim != 2:
        assert message == f"neural must be a 2-D array; got shape {neural.shape} (expected (time points, neurons))"
    elif 0 in neural.shape:
        assert message == f"neural must have at least one time point and one neuron; got shape {neural.shape}"
    elif _first_bad(neural.astype(np.float32)) is not None:
        row, column = _first_bad(neural.astype(np.float32))
        assert message.startswith("neural contains ") and f"is at row {row}, column {column}." in message
    elif _first_bad(label) is not None:
        row, column = _first_bad(label)
        assert message.startswith("label 'position' contains 1 non-finite value(s); the first (NaN) is at "
                                  f"row {row}, column {column}.")
    elif len(label) != len(neural):
        assert message == (f"label 'position' has {len(label)} rows but neural has {len(neural)}; "
                           "they must match in time")
    else:
        assert message is None
