"""Tests for xcebra.diagnostics: the two training-health checks a finished fit runs on its log."""

from __future__ import annotations

import numpy as np
import pytest

from xcebra import diagnostics

CHANCE = float(np.log(128))


@pytest.mark.parametrize("std, n_dims, temperature, expected", [
    (np.full(100, 2.0), 6, 1.0, 2 * 6 * 4.0),
    (np.r_[np.full(95, 1.0), np.full(5, 10.0)], 3, 0.5, 2 * 3 * 100 / 0.5),  # the last 5% of steps decide
    (np.r_[np.full(50, 1.0), np.full(50, 3.0)], 2, 2.0, 2 * 2 * 9 / 2.0),
    (np.array([4.0]), 1, 1.0, 32.0),
])
def test_euclidean_spread(std, n_dims, temperature, expected):
    assert diagnostics.euclidean_spread({"embedding_std": std}, n_dims, temperature) == pytest.approx(expected)


def test_euclidean_spread_needs_the_log():
    assert diagnostics.euclidean_spread({"loss": np.zeros(10)}, 4, 1.0) is None
    assert diagnostics.euclidean_spread({"embedding_std": np.zeros(0)}, 4, 1.0) is None


def _falling(start, end, steps=200):
    return np.linspace(start, end, steps)


@pytest.mark.parametrize("log, expected", [
    # healthy: every objective falls (the regularizer and the total are not objectives)
    ({"loss": _falling(6, 1), "loss/time": _falling(3, -1e6), "loss/behavior": _falling(3, 2),
      "regularizer": _falling(0, 50)}, {}),
    # flat at log(M): an embedding that maps everything to one vector
    ({"loss/time": np.full(120, CHANCE), "loss/behavior": _falling(4, 2, 120)}, {"time": CHANCE}),
    # a loss that rose far above chance is not a collapse: the shared euclidean embedding spread out
    ({"loss/behavior": _falling(4.1, 12.0)}, {}),
    # near chance but beyond the tolerance (1e-3 * log M) is learning, however little
    ({"loss/time": _falling(CHANCE, CHANCE - 0.05)}, {}),
    ({"loss/time": np.full(120, CHANCE - 0.5e-3 * CHANCE)}, {"time": CHANCE - 0.5e-3 * CHANCE}),
])
def test_collapsed_objectives(log, expected):
    found = diagnostics.collapsed_objectives(log, CHANCE)
    assert found.keys() == expected.keys()
    for name, end in found.items():
        assert end == pytest.approx(expected[name])


def test_collapse_is_judged_on_the_median_of_the_last_steps():
    values = np.full(200, 3.0)
    values[-1] = CHANCE  # one step at chance among the last 10 does not move their median
    assert diagnostics.collapsed_objectives({"loss/time": values}, CHANCE) == {}
    values[-10:] = CHANCE
    assert diagnostics.collapsed_objectives({"loss/time": values}, CHANCE) == {"time": CHANCE}


def test_short_fits_are_not_judged():
    flat = {"loss/time": np.full(99, CHANCE)}
    assert diagnostics.collapsed_objectives(flat, CHANCE) == {}
    assert diagnostics.collapsed_objectives(flat, CHANCE, min_steps=99) == {"time": CHANCE}


def test_collapse_rejects_a_bad_fraction():
    with pytest.raises(ValueError, match=r"fraction must be in \(0, 1\]; got 0"):
        diagnostics.collapsed_objectives({"loss/time": np.zeros(10)}, CHANCE, fraction=0)


def test_messages_name_what_happened_and_what_to_do():
    text = diagnostics.collapse_message({"time": 4.852}, 4.852)
    assert text.startswith("objective 'time' ended at 4.852 = log(batch_size) = 4.852") and "learning_rate" in text
    log = {"embedding_std": np.array([0.5, 2e3])}
    text = diagnostics.growth_message(log, 3e7, 1.0)
    assert "0.5 at the first step, 2e+03 at the last" in text and "~3e+07 times the temperature" in text
    assert "lipschitz" in text and "output_clip" in text
