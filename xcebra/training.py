"""The training loop: sampling, one forward pass for all windows of a step, losses, regularizer, Adam.

Each step draws references, negatives and one positive per objective, embeds every distinct time
point once (either as a batch of windows, or by running the convolutional encoder over the whole
recording when that is cheaper), sums the objectives' InfoNCE losses and, when its weight is
positive, adds the Jacobian regularizer estimated on a random subset of the references.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from ._files import read_tensors, write_tensors
from .data import sliding_windows
from .diagnostics import SPREAD_LIMIT, EmbeddingGrowthWarning, euclidean_spread  # noqa: F401  (their old home)
from .losses import Temperature, infonce
from .objectives import Embedder
from .regularizers import draw_projections, jacobian_penalty, ramp_weight
from .sampling import BatchIndex, BatchSampler, Domain

__all__ = ["LossHead", "TrainingPlan", "DivergenceError", "fit", "embed_indices", "evaluate_losses", "make_adam"]

logger = logging.getLogger("xcebra")
CHECKPOINT_FORMAT = "xcebra-checkpoint"
CHECKPOINT_NAME = "checkpoint.safetensors"


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


#: retired warnings (issue #27, decision log "Fewer alarms"): reading them still works, with a DeprecationWarning
_RETIRED_WARNINGS = ("LossIncreaseWarning", "EmbeddingOutlierWarning")
_RETIRED_CLASSES: dict[str, type] = {}


def __getattr__(name: str):
    if name in _RETIRED_WARNINGS:
        warnings.warn(f"xcebra.training.{name} is no longer raised (fit's post-fit checks are "
                      "xcebra.diagnostics.EmbeddingCollapseWarning and EmbeddingGrowthWarning); it will be removed",
                      DeprecationWarning, stacklevel=2)
        if name not in _RETIRED_CLASSES:
            _RETIRED_CLASSES[name] = type(name, (UserWarning,), {"__doc__": "Retired: never raised.",
                                                                 "__module__": __name__})
        return _RETIRED_CLASSES[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class LossHead:
    """One objective as the loop sees it: its slice, similarity, temperature and weight."""

    name: str
    dims: slice
    similarity: str
    temperature: Temperature
    weight: float = 1.0


@dataclass(frozen=True)
class TrainingPlan:
    """Optimisation settings (see :class:`xcebra.XCEBRA` for their meaning)."""

    max_steps: int
    learning_rate: float
    regularizer_weight: float = 0.0
    regularizer_ramp: tuple[int, int] | None = None
    regularizer_batch_size: int | None = 256
    regularizer_projections: int = 1
    regularizer_exact: bool = False
    forward_mode: str = "auto"
    checkpoint_every: int = 0
    precision: str = "fp32"


def embed_indices(embedder: Embedder, neural: torch.Tensor, index: torch.Tensor, mode: str = "auto",
                  sequence: torch.Tensor | None = None, precision: str = "fp32") -> torch.Tensor:
    """Embed the time points ``index`` (K,) of ``neural`` (T, N); returns (K, D), each distinct point computed once.

    ``mode="windows"`` gathers the distinct windows and embeds them as a batch; ``"sequence"`` runs the
    encoder over the whole recording (shared frames of overlapping windows computed once) and picks
    the rows; ``"auto"`` chooses the one that processes fewer frames.
    """
    window, left = embedder.window, embedder.left
    unique, inverse = torch.unique(index, return_inverse=True)
    if mode == "auto":
        # frames processed: a window batch costs about window frames per distinct time point, the whole
        # sequence one frame per time point; measured per frame they cost about the same on CPU
        # (benchmarks/speed.py scaling: T=20k..200k, offset10), so the break-even is T = U * window
        mode = "sequence" if window > 1 and neural.shape[0] < len(unique) * window else "windows"
    if mode == "sequence":
        x = sequence if sequence is not None else neural.T.contiguous()[None]
        z = embedder(x, precision)[0]
        return z.index_select(0, index - left)
    # index_select rather than advanced indexing: the same rows, 4x faster for the window gather of a batch of
    # a few thousand (about 0.1 ms a step of the small synthetic setting, forward and backward together)
    windows = sliding_windows(neural, window).index_select(0, unique - left)
    return embedder(windows, precision)[:, 0].index_select(0, inverse)


def _losses(heads: Sequence[LossHead], z_ref, z_neg, z_pos) -> list[torch.Tensor]:
    return [infonce(z_ref[:, h.dims], zp[:, h.dims], z_neg[:, h.dims], h.similarity, h.temperature())
            for h, zp in zip(heads, z_pos)]


def evaluate_losses(embedder: Embedder, heads: Sequence[LossHead], sampler: BatchSampler, neural: torch.Tensor,
                    n_batches: int) -> list[float]:
    """Each head's InfoNCE loss averaged over ``n_batches`` batches of ``sampler`` on ``neural`` (no gradients)."""
    return _evaluate(embedder, heads, sampler, neural, n_batches,
                     lambda z_ref, z_neg, z_pos: _losses(heads, z_ref, z_neg, z_pos))


def _evaluate(embedder: Embedder, heads: Sequence[LossHead], sampler: BatchSampler, neural: torch.Tensor,
              n_batches: int, measure) -> list[float]:
    totals = [0.0] * len(heads)
    with _inference(embedder):
        sequence = neural.T.contiguous()[None] if embedder.window > 1 else None
        for _ in range(n_batches):
            batch = sampler.sample()
            index = torch.cat([batch.reference, batch.negative, *batch.positives]).to(neural.device)
            z = embed_indices(embedder, neural, index, "auto", sequence)
            z_ref, z_neg, *z_pos = z.split(len(batch.reference))
            for k, value in enumerate(measure(z_ref, z_neg, z_pos)):
                totals[k] += float(value) / n_batches
    return totals


@contextmanager
def _inference(embedder: Embedder):
    """Evaluation mode without gradients for the block; the embedder's previous mode is restored after it."""
    was_training = embedder.training
    embedder.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        embedder.train(was_training)


def make_adam(parameters: Sequence[torch.Tensor], learning_rate: float) -> torch.optim.Adam:
    """Adam with torch's fused kernel where it has one (float32 on CPU or CUDA): one pass over each
    parameter per step instead of a chain of element-wise operations."""
    fused = all(p.device.type in ("cpu", "cuda") and p.dtype == torch.float32 for p in parameters)
    return torch.optim.Adam(parameters, lr=learning_rate, fused=fused or None)


def _fingerprint_data(neural: torch.Tensor, labels: dict) -> str:
    digest = hashlib.blake2b(digest_size=16)
    digest.update(np.ascontiguousarray(neural.cpu().numpy()).tobytes())
    for name in sorted(labels):
        digest.update(name.encode())
        digest.update(np.ascontiguousarray(labels[name]).tobytes())
    return digest.hexdigest()


@dataclass
class _Checkpoint:
    directory: Path
    fingerprint: str

    @property
    def path(self) -> Path:
        return self.directory / CHECKPOINT_NAME


def _save_checkpoint(ck: _Checkpoint, step: int, embedder, heads_module, optimizer, generator, log) -> None:
    tensors = {f"model.{k}": v for k, v in embedder.state_dict().items()}
    tensors.update({f"criterion.{k}": v for k, v in heads_module.state_dict().items()})
    opt_state = optimizer.state_dict()
    for index, state in opt_state["state"].items():
        for key, value in state.items():
            tensors[f"optim.{index}.{key}"] = torch.as_tensor(value)
    tensors["generator"] = generator.get_state()
    tensors.update({f"log.{k}": torch.tensor(v, dtype=torch.float64) for k, v in log.items()})
    header = {"format": CHECKPOINT_FORMAT, "format_version": 1, "step": step, "fingerprint": ck.fingerprint,
              "param_groups": [{k: v for k, v in g.items()} for g in opt_state["param_groups"]],
              "log_keys": sorted(log)}
    write_tensors(ck.path, tensors, header)


def _check_state(what: str, tensors: dict, expected: dict) -> None:
    """Same names, shapes and dtypes as the module's state: refuse before anything is copied."""
    if set(tensors) != set(expected):
        missing = sorted(set(expected) - set(tensors))[:3]
        extra = sorted(set(tensors) - set(expected))[:3]
        raise ValueError(f"its {what} does not match this model (missing {missing}, unexpected {extra})")
    for key, value in expected.items():
        if tensors[key].shape != value.shape or tensors[key].dtype != value.dtype:
            raise ValueError(f"its {what} entry {key!r} has shape {tuple(tensors[key].shape)} and dtype "
                             f"{tensors[key].dtype}; this model needs {tuple(value.shape)} and {value.dtype}")


def _load_checkpoint(ck: _Checkpoint, embedder, heads_module, optimizer, generator, log, max_steps: int) -> int:
    """Restore the run's whole state from ``ck.path``; a damaged or foreign file raises ValueError, changing nothing.

    A checkpoint is written atomically (temporary file, fsync, rename), so a run killed at any moment
    leaves either the previous complete checkpoint or the new complete one. A file that fails to load
    was therefore damaged afterwards or does not come from this run; fit refuses it (rather than
    silently starting over and overwriting it) and names it, so that nothing is lost without the user
    deciding so.
    """
    try:
        tensors, header = read_tensors(ck.path, expected_format=CHECKPOINT_FORMAT)
    except ValueError as error:
        raise ValueError(
            f"cannot resume from checkpoint {str(ck.path)!r}: {error}. Delete the file to start the run afresh, "
            "or pass another checkpoint_dir") from None
    if header.get("fingerprint") != ck.fingerprint:
        raise ValueError(
            f"checkpoint_dir {str(ck.directory)!r} holds a checkpoint of a different run (other data or "
            "hyper-parameters); use another checkpoint_dir or delete it to start afresh")
    try:
        step = header["step"]
        if isinstance(step, bool) or not isinstance(step, int) or not 0 <= step <= max_steps:
            raise ValueError(f"its step {step!r} is not an int in 0..max_steps={max_steps}")
        model_state = {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        _check_state("model", model_state, embedder.state_dict())
        criterion_state = {k[10:]: v for k, v in tensors.items() if k.startswith("criterion.")}
        _check_state("criterion", criterion_state, heads_module.state_dict())
        generator_state = tensors["generator"]
        if generator_state.dtype != torch.uint8 or generator_state.shape != generator.get_state().shape:
            raise ValueError("its random generator state is malformed")
        log_keys = header["log_keys"]
        if sorted(log_keys) != sorted(log) or any(tensors[f"log.{k}"].shape != (step,) for k in log_keys):
            raise ValueError(f"its log does not match this run (keys {log_keys}, {step} steps)")
        state: dict = {}
        for key, value in tensors.items():
            if key.startswith("optim."):
                _, index, name = key.split(".", 2)
                state.setdefault(int(index), {})[name] = value
        flat = [p for g in optimizer.param_groups for p in g["params"]]
        for index, entries in state.items():
            if not 0 <= index < len(flat):
                raise ValueError(f"its optimizer state names parameter {index}; this model has {len(flat)}")
            for name, value in entries.items():
                if name != "step" and value.shape != flat[index].shape:
                    raise ValueError(f"its optimizer state {name!r} of parameter {index} has shape "
                                     f"{tuple(value.shape)}; this model needs {tuple(flat[index].shape)}")
        # the optimizer validates its own state; load it into a scratch copy first so a failure changes nothing
        optimizer_state = {"state": state, "param_groups": header["param_groups"]}
        scratch = torch.optim.Adam([torch.nn.Parameter(p.detach().clone()) for g in optimizer.param_groups
                                    for p in g["params"]], lr=optimizer.param_groups[0]["lr"])
        scratch.load_state_dict(optimizer_state)
    except (KeyError, TypeError, ValueError, RuntimeError, IndexError, AttributeError) as error:
        detail = f"missing entry {error}" if isinstance(error, KeyError) else str(error)
        raise ValueError(
            f"cannot resume from checkpoint {str(ck.path)!r}: {detail}. Delete the file to start the run afresh, "
            "or pass another checkpoint_dir") from error
    embedder.load_state_dict(model_state)
    heads_module.load_state_dict(criterion_state)
    optimizer.load_state_dict(optimizer_state)
    generator.set_state(generator_state)
    for key in log_keys:
        log[key] = tensors[f"log.{key}"].tolist()
    return step


def _remove_stale_temporaries(directory: Path) -> None:
    """Delete the temporary files of checkpoint writes that a killed run left behind."""
    for stale in directory.glob(f".{CHECKPOINT_NAME}.*.tmp"):
        try:
            stale.unlink()
            logger.info("removed %s, left by an interrupted checkpoint write", stale)
        except OSError:
            pass


def _output_dim(embedder: Embedder) -> int:
    return embedder.block_slices[-1][1]


class _Shard:
    """This rank's part of each step in data-parallel training (see :mod:`xcebra.ddp`).

    The rank embeds the batch's time points inside its segment of the valid domain, from the frames of
    that segment only, and the embeddings of all ranks are gathered (differentiably) into batch order.
    """

    def __init__(self, group, embedder: Embedder, neural: torch.Tensor, domain: Domain):
        self.group, self.domain = group, domain
        self.left, self.window = embedder.left, embedder.window
        self.start, self.stop = group.segment(domain.start, domain.stop)
        # frames of the segment's windows: time points start .. stop-1 need rows start-left .. stop-left+window-2
        self.neural = neural[self.start - self.left:max(self.stop, self.start) - self.left + self.window - 1]
        self.sequence = self.neural.T.contiguous()[None] if self.window > 1 and self.stop > self.start else None

    def _owned(self, index: torch.Tensor) -> torch.Tensor:
        return self.group.owners(index, self.domain.start, self.domain.stop)

    def embed(self, embedder: Embedder, index: torch.Tensor, mode: str, precision: str) -> torch.Tensor:
        """(K, D) embedding of ``index`` (K,), identical on every rank; this rank computed its own rows."""
        owner = self._owned(index)
        counts = torch.bincount(owner, minlength=self.group.world_size).tolist()
        mine = index[owner == self.group.rank]
        if len(mine):
            local = embed_indices(embedder, self.neural, mine - self.start + self.left, mode, self.sequence, precision)
        else:  # keeps the rank in the collective; contributes no rows
            local = torch.zeros(0, _output_dim(embedder), device=index.device, requires_grad=True)
        from .ddp import gather_rows
        gathered = gather_rows(local.float(), counts, self.group)
        order = torch.argsort(owner, stable=True)  # gathered rows come rank by rank, in batch order within a rank
        return gathered[torch.argsort(order)]

    def regularizer(self, embedder: Embedder, windows: torch.Tensor, reference: torch.Tensor, coverage, plan,
                    generator: torch.Generator) -> torch.Tensor:
        """This rank's share of the regularizer of ``reference`` (R,): the shares of all ranks sum to it."""
        n, dim = len(reference), _output_dim(embedder)
        # drawn for the whole subset on every rank, so the generator stays in step with a single process
        projections = None if plan.regularizer_exact else draw_projections(
            plan.regularizer_projections, n, dim, generator)
        mask = self._owned(reference) == self.group.rank
        if not bool(mask.any()):
            return windows.new_zeros(())
        reg_windows = windows.index_select(0, reference[mask] - self.left).requires_grad_(True)
        reg_out = embedder(reg_windows, plan.precision)[:, 0]
        return jacobian_penalty(reg_out, reg_windows, row_weights=coverage, n_projections=plan.regularizer_projections,
                                exact=plan.regularizer_exact, denominator=n,
                                projections=None if projections is None else projections[:, mask.cpu()])


def fit(embedder: Embedder, heads: Sequence[LossHead], sampler: BatchSampler, neural: torch.Tensor,
        plan: TrainingPlan, *, coverage: Sequence[int], generator: torch.Generator, verbose: bool = True,
        checkpoint_dir: str | os.PathLike | None = None, fingerprint: str = "",
        group=None) -> dict[str, np.ndarray]:
    """Train ``embedder`` in place; return the log (per-step arrays).

    Parameters
    ----------
    embedder : the network to train.
    heads : one per objective, in the order of ``sampler.distributions``.
    sampler : draws the batches.
    neural : (T, N) float32 tensor on the training device.
    plan : optimisation settings.
    coverage : (D,) how many objectives see each embedding dimension (regularizer weights).
    generator : the run's random generator (sampling and projections).
    checkpoint_dir : if given, resume from the checkpoint found there (it must come from the same run,
        see ``fingerprint``) and save one every ``plan.checkpoint_every`` steps, atomically.
    group : :class:`xcebra.ddp.ProcessGroup`, optional
        Train data-parallel with the other ranks of this group (every rank calls ``fit`` with the same
        arguments); the result equals a single process's. Only rank 0 shows progress and writes checkpoints.

    Raises
    ------
    DivergenceError
        A loss, gradient or updated weight became NaN or infinite; the weights are those before that
        step and the error's ``log`` holds the log of the steps before it.
    ValueError
        The checkpoint in ``checkpoint_dir`` comes from another run, or is damaged; it is left untouched.
    """
    heads_module = torch.nn.ModuleList([h.temperature for h in heads])
    parameters = list(embedder.parameters()) + [p for p in heads_module.parameters() if p.requires_grad]
    optimizer = make_adam(parameters, plan.learning_rate)
    log: dict[str, list] = {"loss": [], "regularizer": [], "regularizer_weight": [], "seconds": []}
    # the euclidean losses are unbounded below as the embedding grows: log its spread (the estimator warns)
    width = _output_dim(embedder)
    euclidean = sorted({d for h in heads if h.similarity == "euclidean" for d in range(*h.dims.indices(width))})
    euclidean_dims = None
    if euclidean:
        log["embedding_std"] = []
        # a slice where the dims are contiguous (they usually are): a view, not a gather, each step
        contiguous = euclidean == list(range(euclidean[0], euclidean[-1] + 1))
        euclidean_dims = slice(euclidean[0], euclidean[-1] + 1) if contiguous else torch.tensor(
            euclidean, device=neural.device)
    for h in heads:
        log[f"loss/{h.name}"] = []
        if h.temperature.learnable:
            log[f"temperature/{h.name}"] = []
    checkpoint = None
    start = 0
    rank_zero = group is None or group.rank == 0
    if group is not None:
        group.broadcast_parameters(parameters)
    if checkpoint_dir is not None:
        checkpoint = _Checkpoint(Path(checkpoint_dir), fingerprint)
        if checkpoint.path.exists():  # every rank resumes from the same file (a shared file system)
            start = _load_checkpoint(checkpoint, embedder, heads_module, optimizer, generator, log, plan.max_steps)
            logger.info("resuming from %s at step %d", checkpoint.path, start)
        if rank_zero and checkpoint.directory.is_dir():
            _remove_stale_temporaries(checkpoint.directory)
    sequence = neural.T.contiguous()[None] if embedder.window > 1 else None
    windows = sliding_windows(neural, embedder.window)
    left = embedder.left
    reg_size = sampler.batch_size if plan.regularizer_batch_size is None else min(plan.regularizer_batch_size, sampler.batch_size)
    # the regularizer's row weights as a tensor once, not converted from the sequence at every step
    coverage = torch.as_tensor(coverage, dtype=torch.float32, device=neural.device)
    # the weights before the current step, restored if an update turns any of them non-finite
    last_good = [p.detach().clone() for p in parameters]
    embedder.train()
    shard = None if group is None else _Shard(group, embedder, neural, sampler.domain)
    bar = tqdm(total=plan.max_steps, initial=start, disable=not (verbose and rank_zero), desc="xcebra fit", unit="step",
               dynamic_ncols=True)
    try:
        for step in range(start, plan.max_steps):
            started = time.perf_counter()
            batch: BatchIndex = sampler.sample()
            index = torch.cat([batch.reference, batch.negative, *batch.positives])
            if shard is None:
                z = embed_indices(embedder, neural, index, plan.forward_mode, sequence, plan.precision)
            else:
                z = shard.embed(embedder, index, plan.forward_mode, plan.precision)
            z_ref, z_neg, *z_pos = z.split(len(batch.reference))
            losses = _losses(heads, z_ref, z_neg, z_pos)
            total = sum(h.weight * l for h, l in zip(heads, losses))
            weight = ramp_weight(step, plan.regularizer_weight, plan.regularizer_ramp)
            if shard is not None:
                # every rank evaluates the whole contrastive loss: 1/world_size of it each, as gradients are summed
                objective = total / group.world_size
                if weight > 0:
                    share = shard.regularizer(embedder, windows, batch.reference[:reg_size], coverage, plan, generator)
                    objective = objective + weight * share
                    regularizer = group.all_reduce_sum(share)
                    total = total + weight * regularizer
                else:
                    regularizer = total.new_zeros(())
            elif weight > 0:
                # index_select copies: the leaf the regularizer differentiates by is not a view of the data
                reg_windows = windows.index_select(0, batch.reference[:reg_size] - left).requires_grad_(True)
                reg_out = embedder(reg_windows, plan.precision)[:, 0]
                regularizer = jacobian_penalty(reg_out, reg_windows, row_weights=coverage,
                                               n_projections=plan.regularizer_projections,
                                               exact=plan.regularizer_exact, generator=generator)
                total = total + weight * regularizer
                objective = total
            else:
                regularizer = total.new_zeros(())
                objective = total
            optimizer.zero_grad(set_to_none=True)
            objective.backward()
            if group is not None:
                from .ddp import all_reduce_gradients
                all_reduce_gradients(parameters)
            grads = [p.grad for p in parameters if p.grad is not None]
            # one foreach kernel for all the per-tensor norms: the small MLP's step is bound by operation count
            grad_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))) if grads else total.new_zeros(())
            monitored = [total.detach(), regularizer.detach(), grad_norm, *[l.detach() for l in losses]]
            if euclidean_dims is not None:
                spread = z_ref.detach()[:, euclidean_dims].float()
                monitored.append((spread - spread.mean(0)).square().mean().sqrt())
            values = torch.stack(monitored).tolist()
            if not all(math.isfinite(v) for v in values[:3 + len(heads)]):
                raise DivergenceError(
                    f"training diverged at step {step}: loss={values[0]:.4g}, gradient norm={values[2]:.4g}. "
                    "The weights from before this step were kept; lower learning_rate or regularizer_weight, "
                    "or check the data for extreme values", step=step, log=_as_arrays(log))
            with torch.no_grad():
                if hasattr(torch, "_foreach_copy_"):
                    torch._foreach_copy_(last_good, parameters)
                else:  # older torch
                    for saved, p in zip(last_good, parameters):
                        saved.copy_(p)
            optimizer.step()
            # a norm is finite exactly when every entry is (or it overflowed float32, a divergence too)
            if not bool(torch.isfinite(torch.stack(torch._foreach_norm(parameters))).all()):
                with torch.no_grad():
                    for saved, p in zip(last_good, parameters):
                        p.copy_(saved)
                raise DivergenceError(
                    f"training diverged at step {step}: the update made weights non-finite (loss={values[0]:.4g}, "
                    f"gradient norm={values[2]:.4g}). The weights from before this step were kept; lower "
                    "learning_rate", step=step, log=_as_arrays(log))
            log["loss"].append(values[0])
            log["regularizer"].append(values[1])
            log["regularizer_weight"].append(weight)
            log["seconds"].append(time.perf_counter() - started)
            for h, v in zip(heads, values[3:3 + len(heads)]):
                log[f"loss/{h.name}"].append(v)
                if h.temperature.learnable:
                    log[f"temperature/{h.name}"].append(float(h.temperature().detach()))
            if euclidean_dims is not None:
                log["embedding_std"].append(values[-1])
            bar.update(1)
            if verbose and (step % 10 == 0 or step == plan.max_steps - 1):
                bar.set_postfix({h.name: f"{v:.3f}" for h, v in zip(heads, values[3:3 + len(heads)])}
                                | {"reg": f"{values[1]:.3g}"},
                                refresh=False)
            if checkpoint is not None and rank_zero and plan.checkpoint_every and (
                    (step + 1) % plan.checkpoint_every == 0 or step + 1 == plan.max_steps):
                _save_checkpoint(checkpoint, step + 1, embedder, heads_module, optimizer, generator, log)
    finally:
        bar.close()
        optimizer.zero_grad(set_to_none=True)
        embedder.eval()
    return _as_arrays(log)


def _as_arrays(log: dict[str, list]) -> dict[str, np.ndarray]:
    return {key: np.asarray(values, dtype=np.float64) for key, values in log.items()}
