"""Former home of :class:`xcebra.SupervisedRegressor`, now :mod:`xcebra.estimators.supervised`."""

from .estimators.supervised import SupervisedRegressor

__all__ = ["SupervisedRegressor"]
