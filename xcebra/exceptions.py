"""Every exception and warning class that xcebra raises, in one module at the bottom of the package.

They used to live beside the code that raises them (``xcebra.training``, ``xcebra.diagnostics``,
``xcebra.parallel``, ``xcebra.datasets.io``), and those modules still re-export them, so
``except xcebra.training.DivergenceError`` and ``pytest.warns(xcebra.diagnostics.EmbeddingGrowthWarning)``
keep working. Defining them here lets any layer raise or catch them without importing the layer that
raises them.
"""

from __future__ import annotations

__all__ = ["DivergenceError", "EmbeddingGrowthWarning", "EmbeddingCollapseWarning", "FitManyError",
           "MissingKeyError"]


class DivergenceError(FloatingPointError):
    """Training produced a non-finite loss, gradient or weight; the weights before that step were kept.

    Attributes
    ----------
    step : int or None
        The step (0-based) that failed; the steps before it completed.
    log : dict of str -> ndarray
        The training log of the completed steps (the same keys as a finished run's log).
    """

    def __init__(self, message: str, step: int | None = None, log: dict | None = None):
        super().__init__(message)
        self.step = step
        self.log = {} if log is None else log

    def __reduce__(self):  # keep step and log when the error crosses a process boundary (Dask, multiprocessing)
        return type(self), (self.args[0] if self.args else "", self.step, self.log)


class EmbeddingGrowthWarning(UserWarning):
    """An unbounded euclidean embedding kept growing: its InfoNCE loss was falling by inflating the scale.

    Scaling an embedding in which positives are closer than the nearest negatives by ``c`` multiplies
    the loss's distance terms by ``c**2``. Scores that do not see scale (linear decoding, block AUC) can
    still look fine, but the objective then mostly inflates the embedding, attribution maps lose the
    neurons that drive it (ING block AUC 0.48-0.62 on slow-latent recordings) and float32 precision of the
    distances degrades. Raised only for fits without a bound (``lipschitz=None, output_clip=None``).
    """


class EmbeddingCollapseWarning(UserWarning):
    """An objective's loss ended at ``log(batch_size)``: its slice tells no positive from the negatives.

    Then the objective learned nothing. Two causes are seen. A too large learning rate kills every
    unit in a step: every time point embeds to one vector and every attribution map is zero. Or the
    recording carries no information about the objective's positives, e.g. a label that the neurons
    do not encode (the speed benchmark's data: Gaussian noise beside a random walk); the warning is
    then a finding about the data, not about the fit.
    """


class FitManyError(RuntimeError):
    """Some jobs of :func:`xcebra.parallel.fit_many` failed after their retries.

    Attributes
    ----------
    failures : dict of int -> BaseException, the error of each failed job (by its index in ``datasets``).
    models : list, the fitted estimator of each job, None where it failed. With ``out_dir`` the finished
        ones are on disk too, and a rerun with the same arguments fits only the failed jobs.
    """

    def __init__(self, failures: dict[int, BaseException], models: list, out_dir: str | None):
        self.failures, self.models = failures, models
        lines = [f"job {i}: {type(e).__name__}: {e}" for i, e in sorted(failures.items())]
        kept = (f"; the {len(models) - len(failures)} finished models are in {out_dir!r} and a rerun fits only "
                "the failed jobs" if out_dir is not None else "")
        super().__init__(f"{len(failures)} of {len(models)} fits failed{kept}:\n" + "\n".join(lines))


class MissingKeyError(KeyError):
    """A requested key is not in the file. ``str(error)`` is the plain message (no quotes added)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""
