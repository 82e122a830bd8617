"""The scikit-learn estimator contract, where users meet it: Pipeline, fit(X, y), score, GridSearchCV and the
common estimator checks that apply to an unsupervised, label-driven embedding.

Checks of scikit-learn's suite that do not apply, and why:
- the classifier / regressor / transformer-output checks compare ``predict`` or ``transform`` outputs
  with fixed expectations for random data; an xCEBRA embedding is defined only up to an invertible
  linear map per block, so equality across fits holds only for the same ``random_state`` (checked
  below by ``check_fit_idempotent``);
- checks that fit on data with fewer rows than ``batch_size`` (the contract raises a ValueError naming
  both numbers) run here with ``batch_size=8``;
- sparse-input and pandas-output checks: XCEBRA takes dense time series only.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, TimeSeriesSplit
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import estimator_checks

import xcebra
from xcebra import Objective, XCEBRA


def _estimator(**kwargs) -> XCEBRA:
    params = dict(model="offset1", hidden_units=16, output_dim=4, batch_size=8, max_steps=5, verbose=False,
                  random_state=0)
    params.update(kwargs)
    return XCEBRA([Objective("behavior", dims=(0, 2), distribution="time_delta", label="position"),
                   Objective("time", dims=(0, 4), distribution="time", time_offset=2)], **params)


@pytest.fixture(scope="module")
def recording():
    data = xcebra.datasets.make_synthetic(n_timepoints=800, n_neurons=12, random_state=0)
    return data.neural, data.behavior


@pytest.mark.parametrize("check", [
    "check_no_attributes_set_in_init", "check_estimators_unfitted", "check_n_features_in",
    "check_estimators_pickle", "check_get_params_invariance", "check_set_params",
    "check_estimators_overwrite_params", "check_dont_overwrite_parameters", "check_fit_idempotent",
    "check_dict_unchanged",
])
def test_scikit_learn_estimator_checks(check):
    getattr(estimator_checks, check)("XCEBRA", _estimator())


def test_fit_with_y_equals_fit_with_the_named_label(recording):
    neural, position = recording
    by_name = _estimator().fit(neural, position=position)
    positional = _estimator().fit(neural, position)
    np.testing.assert_array_equal(by_name.transform(neural), positional.transform(neural))
    assert positional.label_names_ == ("position",)


def test_pipeline_passes_y_to_xcebra(recording):
    neural, position = recording
    pipe = make_pipeline(StandardScaler(), _estimator())
    pipe.fit(neural, position)
    direct = _estimator().fit(StandardScaler().fit_transform(neural), position=position)
    np.testing.assert_allclose(pipe.transform(neural), direct.transform(StandardScaler().fit_transform(neural)),
                               rtol=1e-6, atol=1e-6)
    # keyword labels reach the step through Pipeline's fit params too
    keyword = make_pipeline(StandardScaler(), _estimator()).fit(neural, xcebra__position=position)
    np.testing.assert_array_equal(keyword.transform(neural), pipe.transform(neural))
    assert np.isfinite(pipe.score(neural, position))


def test_y_errors(recording):
    neural, position = recording
    with pytest.raises(ValueError, match="label 'position' was given twice, as y and as position=...; pass it once"):
        _estimator().fit(neural, position, position=position)
    two = XCEBRA([Objective("a", dims=(0, 2), distribution="time_delta", label="position"),
                  Objective("b", dims=(2, 4), distribution="time_delta", label="speed")],
                 model="offset1", output_dim=4, batch_size=8, max_steps=2, verbose=False)
    with pytest.raises(ValueError, match=r"y was given, but the objectives name 2 labels \('position', 'speed'\)"):
        two.fit(neural, position)
    time_only = XCEBRA([Objective("t", dims=(0, 4), distribution="time")], model="offset1", output_dim=4,
                       batch_size=8, max_steps=2, verbose=False)
    with pytest.raises(ValueError, match=r"the objectives name 0 labels \(none\)"):
        time_only.fit(neural, position)
    time_only.fit(neural)  # no y, no label: fine


def test_score_is_the_infonce_goodness_of_fit_in_bits(recording):
    neural, position = recording
    model = _estimator(max_steps=200, batch_size=64, learning_rate=3e-3).fit(neural, position=position)
    losses = model.objective_losses(neural, position=position)
    expected = np.mean([(np.log(64) - loss) / np.log(2) for loss in losses.values()])  # equal weights
    assert model.score(neural, position) == pytest.approx(expected, rel=1e-12)
    assert model.score(neural, position=position) == model.score(neural, position)
    # a trained model beats an untrained one, which sits near 0 bits (every score about equal)
    untrained = _estimator(max_steps=0, batch_size=64).fit(neural, position=position)
    # (cosine, temperature 1: scores lie in [-1, 1], so a few tenths of a bit is what a good fit gains here)
    assert model.score(neural, position) > untrained.score(neural, position) + 0.1
    assert abs(untrained.score(neural, position)) < 0.1


def test_grid_search_ranks_models_by_score(recording):
    neural, position = recording
    search = GridSearchCV(_estimator(batch_size=32, learning_rate=3e-3), {"max_steps": [0, 150]},
                          cv=TimeSeriesSplit(n_splits=2))
    search.fit(neural, position)
    assert search.best_params_ == {"max_steps": 150}
    scores = search.cv_results_["mean_test_score"]
    assert scores[1] > scores[0]


@pytest.mark.parametrize("bound", [{}, {"loss": "euclidean"}, {"loss": "euclidean", "lipschitz": None, "output_clip": 5.0}])
def test_clone_and_pickle_keep_a_fitted_model(recording, bound):
    # euclidean: the default Lipschitz bound makes the encoder a parametrized module (Dask pickles fitted models)
    neural, position = recording
    model = _estimator(**bound).fit(neural, position)
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(again.transform(neural), model.transform(neural))
    assert clone(model).get_params() == model.get_params() and not hasattr(clone(model), "encoder_")
