"""Analyse a fitted model on a recording: embed, decode the labels, attribute, test a cell-type hypothesis.

:func:`analyze` is the one analysis that ``xcebra report`` runs on user data and that the demo
(:mod:`xcebra.demo`) runs on its RatInABox recording; it returns numbers only (an :class:`Analysis`).
Figures and report sections are drawn from an :class:`Analysis` by :mod:`xcebra.viz.analysis`, so this
module imports no plotting code.

Example
-------
>>> import xcebra
>>> from xcebra.pipeline import analyze
>>> data = xcebra.datasets.make_synthetic(n_timepoints=1000, n_neurons=12, random_state=0)
>>> model = xcebra.XCEBRA([xcebra.Objective("behavior", dims=(0, 3), distribution="time_delta", label="position"),
...                        xcebra.Objective("time", dims=(0, 6), distribution="time", time_offset=10)],
...                       model="offset1", output_dim=6, max_steps=5, verbose=False, random_state=0)
>>> model = model.fit(data.neural, position=data.behavior)
>>> result = analyze(model, data.neural, labels={"position": data.behavior}, methods=["jacobian"], verbose=False)
>>> sorted(result.decoding["position"])
['behavior', 'time']
>>> result.attribution["jacobian"].values.shape
(6, 12)
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from .attribution.maps import AttributionMap
from .hypotheses import HypothesisResult, test_hypothesis
from .metrics import decoding_scores, session_consistency
from .typing import ArrayLike, NeuralArray

__all__ = ["Analysis", "analyze", "decode_labels", "per_type_means", "PhaseTimer", "block_consistency"]

logger = logging.getLogger("xcebra")


class PhaseTimer:
    """Wall-clock seconds per named phase (``with timer("fit"): ...``), logged at INFO as each phase ends.

    Attributes
    ----------
    seconds : dict of str -> float
        Seconds spent in each phase so far (a phase entered twice adds up).
    """

    def __init__(self, prefix: str = "xcebra") -> None:
        self.prefix = prefix
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def __call__(self, phase: str) -> Iterator[None]:
        logger.info("%s: %s ...", self.prefix, phase)
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.seconds[phase] = self.seconds.get(phase, 0.0) + elapsed
            logger.info("%s: %s done in %.1f s", self.prefix, phase, elapsed)


@dataclasses.dataclass(frozen=True, eq=False)
class Analysis:
    """The numbers :func:`analyze` found for one model on one recording.

    Attributes
    ----------
    embedding : ndarray of shape (T, output_dim)
    decoding : dict
        ``{label: {block: {"linear_r2", "linear_r2_train", "knn_r2"}}}`` (held-out scores from time-series splits).
    attribution : dict of str -> AttributionMap
        One map per method, in the order asked for.
    per_type : dict
        ``{method: {block: {cell type: mean block value}}}``; empty without cell types.
    hypothesis : dict of str -> HypothesisResult
        One result per method; empty without a hypothesis.
    """

    embedding: np.ndarray
    decoding: dict[str, dict[str, dict[str, float]]]
    attribution: dict[str, AttributionMap]
    per_type: dict[str, dict[str, dict[str, float]]]
    hypothesis: dict[str, HypothesisResult]

    def as_dict(self) -> dict[str, Any]:
        """The fields as a dict: ``decoding``, ``attribution``, ``hypothesis``, ``per_type``, ``embedding``."""
        return {"decoding": self.decoding, "attribution": self.attribution, "hypothesis": self.hypothesis,
                "per_type": self.per_type, "embedding": self.embedding}


def decode_labels(model: Any, embedding: np.ndarray, labels: Mapping[str, ArrayLike]) -> dict[str, dict[str, dict]]:
    """Held-out decoding of every label from every block of ``embedding`` (T, output_dim).

    Returns ``{label: {block: {"linear_r2", "knn_r2", "linear_r2_train"}}}`` (:func:`xcebra.metrics.decoding_scores`).
    """
    return {name: decoding_scores(embedding, np.asarray(values), model.blocks_) for name, values in labels.items()}


def per_type_means(amap: Any, cell_types: Sequence[str]) -> dict[str, dict[str, float]]:
    """{block: {cell type: mean of the block's values over the neurons of that type}} (types by first appearance).

    Parameters
    ----------
    amap : AttributionMap, or any object with ``block_values`` (n_blocks, N) and ``blocks``
    cell_types : sequence of str of length N
    """
    types = np.asarray([str(t) for t in cell_types])
    values = np.asarray(amap.block_values, dtype=np.float64)
    if len(types) != values.shape[1]:
        raise ValueError(f"cell_types has {len(types)} entries but the attribution map has {values.shape[1]} "
                         "neurons; they must match")
    return {name: {t: float(values[b, types == t].mean()) for t in dict.fromkeys(types.tolist())}
            for b, (name, _) in enumerate(amap.blocks)}


def analyze(model: Any, neural: NeuralArray, *, labels: Mapping[str, ArrayLike] | None = None,
            cell_types: Sequence[str] | None = None, hypothesis: Mapping[str, Sequence[str]] | None = None,
            methods: Sequence[str] = ("ing",), num_samples: int | None = None, batch_size: int = 1024,
            verbose: bool = True, timer: PhaseTimer | None = None, session: int | None = None) -> Analysis:
    """Embed, decode, attribute and (optionally) test a cell-type hypothesis for a fitted model.

    Parameters
    ----------
    model : fitted XCEBRA (or any estimator with ``transform``, ``attribution_map`` and ``blocks_``)
    neural : array of shape (T, N); numpy array, memory map or h5py dataset
    labels : dict of str to array of shape (T,) or (T, d), optional
        Decoded from every block (held-out linear and kNN R2).
    cell_types : sequence of str of length N, optional
        Gives the mean attribution per cell type and block.
    hypothesis : dict of block name -> cell types, optional
        Scored with :func:`xcebra.hypotheses.test_hypothesis` (needs ``cell_types``).
    methods : attribution methods, default ("ing",)
    num_samples : int, optional
        Attribute this many time points instead of all.
    batch_size : int, default 1024
        Time points per attribution batch.
    verbose : bool, default True
        Progress bars.
    timer : PhaseTimer, optional
        Records the seconds of the phases ``embedding``, ``decoding``, ``attribution_<method>`` and
        ``hypotheses``.
    session : int, optional
        Multi-session models: the session ``neural`` comes from (its encoder embeds and is attributed).

    Returns
    -------
    Analysis

    Raises
    ------
    ValueError
        ``hypothesis`` without ``cell_types``, or arguments the model's methods refuse.
    """
    timer = timer or PhaseTimer()
    labels = dict(labels or {})
    if hypothesis is not None and cell_types is None:
        raise ValueError("a hypothesis needs cell_types (one cell type per neuron)")
    by_session = {} if session is None else {"session": session}  # estimators without sessions take no such argument
    with timer("embedding"):
        embedding = model.transform(neural, **by_session)
    with timer("decoding"):
        decoding = decode_labels(model, embedding, labels)
    amaps = {}
    for method in methods:
        with timer(f"attribution_{method}"):
            amaps[method] = model.attribution_map(neural, method=method, num_samples=num_samples,
                                                  batch_size=batch_size, verbose=verbose, **by_session)
    results: dict[str, HypothesisResult] = {}
    per_type: dict[str, dict[str, dict[str, float]]] = {}
    if cell_types is not None:
        with timer("hypotheses"):
            for method, amap in amaps.items():
                per_type[method] = per_type_means(amap, cell_types)
                if hypothesis is not None:
                    results[method] = test_hypothesis(amap, cell_types, hypothesis)
    return Analysis(embedding=embedding, decoding=decoding, attribution=amaps, per_type=per_type,
                    hypothesis=results)


def block_consistency(model: Any, neural: Sequence[NeuralArray], label: Sequence[ArrayLike], *,
                      block: str | None = None, label_name: str | None = None, n_bins: int = 10) -> np.ndarray:
    """How well the sessions of a multi-session model agree on a block: (S, S) R2 matrix.

    Embeds each session with its own encoder, keeps ``block``'s columns and scores them with
    :func:`xcebra.metrics.session_consistency` (label-binned mean embeddings, linear R2 between sessions).

    Parameters
    ----------
    model : a fitted multi-session XCEBRA
    neural : sequence of S arrays (T_s, N_s), in the model's session order
    label : sequence of S arrays (T_s,) or (T_s, d): the label the sessions are aligned by (e.g. position)
    block : str, optional
        Default: the block owned by the first objective whose label is ``label_name`` (or, without
        ``label_name``, the first label-driven objective's block).
    label_name : str, optional
        The label's name as given to ``fit``; only used to choose the default block.
    n_bins : int, default 10
        Bins per label dimension.

    Returns
    -------
    ndarray of shape (S, S), float64; entry [i, j]: R2 of session j's block predicted from session i's.

    Raises
    ------
    ValueError
        ``neural`` and ``label`` do not hold one array per session of the model, or ``block`` is unknown.
    """
    n_sessions = getattr(model, "n_sessions_", None)
    if n_sessions is None:
        raise ValueError("block_consistency needs a multi-session model (fitted on a list of recordings)")
    if len(neural) != n_sessions or len(label) != n_sessions:
        raise ValueError(f"neural and label must hold one array per session ({n_sessions}); got {len(neural)} and "
                         f"{len(label)}")
    names = [name for name, _ in model.blocks_]
    if block is None:
        owners = [o.name for o in model.objectives if o.distribution != "time"
                  and (label_name is None or o.label == label_name)]
        if not owners:
            raise ValueError(f"no label-driven objective{'' if label_name is None else f' on {label_name!r}'}; "
                             f"pass block= one of {names}")
        block = owners[0]
    if block not in names:
        raise ValueError(f"block must be one of {names}; got {block!r}")
    columns = dict(model.blocks_)[block]
    embeddings = [model.transform(x, session=s)[:, columns] for s, x in enumerate(neural)]
    return session_consistency(embeddings, label, n_bins=n_bins)
