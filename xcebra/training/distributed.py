"""Data-parallel training of one model over processes (``torch.distributed``: ``torchrun``, ``srun``).

``XCEBRA.fit`` uses this module by itself when it runs in a process group of two or more processes:
one started by ``torchrun --nproc_per_node=K``, by ``srun`` on SLURM (with ``MASTER_ADDR`` and
``MASTER_PORT`` exported), or created by the user with ``torch.distributed.init_process_group``.

How a step is split (each rank holds the whole recording):

* Every rank draws the same global batch from the same seeded generator (the seed of rank 0 is
  broadcast). Drawing indices costs O(batch log T), a small part of a step; drawing them identically
  everywhere is what makes the result equal to one process with the same global batch.
* Time is cut into ``world_size`` contiguous segments. Each rank embeds only the batch's time points
  in its segment (reference, negatives and positives alike), with the cheaper of a window batch or a
  convolution over its segment, and the embeddings are gathered by an autograd-aware all-gather:
  every rank then holds all embeddings, including all negatives, and evaluates the full InfoNCE loss.
* The gather's backward sums the cotangents of all ranks, and parameter gradients are summed over
  ranks with one all-reduce, so that loss and gradients equal those of a single process with the
  same global batch (tested in ``tests/test_ddp.py``). The Jacobian regularizer is split the same way:
  each rank evaluates it on its references of the regularizer subset.

We all-reduce the gradients ourselves instead of wrapping the encoder in
``torch.nn.parallel.DistributedDataParallel``: the regularizer back-propagates through a gradient
(double backward), which DDP's bucketed hooks do not support, and the same-everywhere loss would
make DDP's averaging wrong by a factor anyway.

gloo on CPU, nccl on CUDA (each rank on ``cuda:LOCAL_RANK``). Only rank 0 shows progress bars,
writes checkpoints and saves models.

Teardown: a group that ``fit`` created (torchrun, srun) is destroyed at interpreter exit, by an
``atexit`` handler; a group the user created is the user's to destroy (``dist.destroy_process_group()``
on every rank, before the process ends). Either way the group must really be freed while Python is
still running: a gloo worker thread that outlives the interpreter's shutdown aborts the process
(SIGABRT) when it releases the last tensor of a collective. See the import of
``torch.distributed.nn.functional`` below for what used to keep the group alive.
"""

from __future__ import annotations

import atexit
import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Sequence

import torch
import torch.distributed as dist

from ..models import Embedder
from ..regularizers import draw_projections, jacobian_penalty
from ..sampling import Domain
from .forward import embed_indices, output_dim

__all__ = ["ProcessGroup", "current_group", "is_rank_zero", "gather_rows", "all_reduce_gradients", "Shard"]

logger = logging.getLogger("xcebra")

if dist.is_available():
    # torch.distributed.nn.functional binds ``group.WORLD`` as a default argument of its functions when
    # it is first imported, and torch imports it lazily (torch._dynamo, on the first optimiser). Imported
    # while a process group exists, those defaults keep the group alive after destroy_process_group(): its
    # gloo threads then run into interpreter shutdown, where one that releases a collective's tensor takes
    # the GIL and aborts the process (SIGABRT in ~AsyncAllgatherWork -> decref_pyobject -> take_gil).
    # Imported here, before any group exists, the defaults are None.
    import torch.distributed.nn.functional  # noqa: F401

_TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _launcher_environment() -> tuple[int, int, int] | None:
    """(rank, world_size, local_rank) from torchrun's or SLURM's environment, or None for a single process."""
    env = os.environ
    if all(name in env for name in _TORCHRUN_VARIABLES):
        rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
        local = int(env.get("LOCAL_RANK", rank))
    elif "SLURM_PROCID" in env and "SLURM_NTASKS" in env and "MASTER_ADDR" in env and "MASTER_PORT" in env:
        rank, world = int(env["SLURM_PROCID"]), int(env["SLURM_NTASKS"])
        local = int(env.get("SLURM_LOCALID", 0))
    else:
        return None
    return (rank, world, local) if world > 1 else None


def _initialize(device_type: str) -> None:
    found = _launcher_environment()
    if found is None:
        return
    rank, world, local = found
    backend = "nccl" if device_type == "cuda" else "gloo"
    if device_type == "cuda":
        torch.cuda.set_device(local)
    # the group is created from the launcher's variables; MASTER_ADDR/PORT name the rendezvous
    dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world,
                            timeout=timedelta(minutes=30))
    logger.info("xcebra: joined a %s process group as rank %d of %d", backend, rank, world)
    # the group is ours, so we leave it: at exit, while the interpreter can still run the backend's
    # threads to their end (left to interpreter shutdown, gloo aborts the process). Unregistered first
    # so that a group joined again after a destroy_process_group() does not add a second handler.
    atexit.unregister(_leave_group)
    atexit.register(_leave_group)


def _leave_group() -> None:
    """Destroy the default process group, if one is left (an ``atexit`` handler: no barrier, since a
    rank that failed must not wait for the others)."""
    if dist.is_initialized():
        dist.destroy_process_group()


@dataclass(frozen=True)
class ProcessGroup:
    """The processes training one model together.

    Attributes
    ----------
    rank : int, this process (0 .. world_size - 1).
    world_size : int, number of processes (>= 2).
    local_rank : int, index of this process on its machine (its GPU under nccl).
    """

    rank: int
    world_size: int
    local_rank: int = 0

    def segment(self, start: int, stop: int, rank: int | None = None) -> tuple[int, int]:
        """The part ``[a, b)`` of time points ``start <= t < stop`` that ``rank`` (default: this one) embeds."""
        rank = self.rank if rank is None else rank
        size = stop - start
        return start + size * rank // self.world_size, start + size * (rank + 1) // self.world_size

    def owners(self, index: torch.Tensor, start: int, stop: int) -> torch.Tensor:
        """(K,) rank that embeds each time point of ``index`` (K,), all inside ``[start, stop)``."""
        bounds = torch.tensor([self.segment(start, stop, r)[1] for r in range(self.world_size - 1)],
                              dtype=index.dtype, device=index.device)
        return torch.bucketize(index, bounds, right=True)

    def broadcast_int(self, value: int) -> int:
        """``value`` of rank 0, on every rank."""
        box = [int(value)]
        dist.broadcast_object_list(box, src=0)
        return int(box[0])

    def all_reduce_sum(self, tensor: torch.Tensor) -> torch.Tensor:
        """Sum over ranks (a new tensor; no autograd)."""
        out = tensor.detach().clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM)
        return out

    def check_same(self, what: str, values: Sequence[float]) -> None:
        """Raise ValueError on every rank if ``values`` differ between ranks (e.g. data shape and checksum)."""
        everyone: list[Any] = [None] * self.world_size
        dist.all_gather_object(everyone, [float(v) for v in values])
        if any(v != everyone[0] for v in everyone):
            raise ValueError(
                f"data-parallel fit: {what} differ between ranks ({everyone}); every process must call fit "
                "with the same data and labels")

    def broadcast_parameters(self, parameters: Sequence[torch.Tensor]) -> None:
        """Copy rank 0's values into ``parameters`` on every rank."""
        with torch.no_grad():
            for p in parameters:
                dist.broadcast(p.data, src=0)


def current_group(device_type: str = "cpu") -> ProcessGroup | None:
    """The process group ``fit`` trains over, or None when this is the only process.

    Joins the group first when the process was started by ``torchrun`` (``RANK``, ``WORLD_SIZE``,
    ``MASTER_ADDR``, ``MASTER_PORT``) or by ``srun`` with ``MASTER_ADDR`` / ``MASTER_PORT`` exported
    (``SLURM_PROCID``, ``SLURM_NTASKS``), and no group exists yet.
    """
    if not dist.is_available():
        return None
    if not dist.is_initialized():
        _initialize(device_type)
        if not dist.is_initialized():
            return None
    world = dist.get_world_size()
    if world < 2:
        return None
    local = int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", 0)))
    return ProcessGroup(rank=dist.get_rank(), world_size=world, local_rank=local)


def is_rank_zero() -> bool:
    """False only in a process of an initialised group whose rank is not 0 (it must not write files)."""
    return not (dist.is_available() and dist.is_initialized() and dist.get_rank() != 0)


class _GatherRows(torch.autograd.Function):
    """All-gather of row blocks of unequal length, differentiable: backward sums cotangents over ranks."""

    @staticmethod
    def forward(ctx, local: torch.Tensor, counts: tuple[int, ...], rank: int) -> torch.Tensor:
        ctx.counts, ctx.rank = counts, rank
        longest = max(counts)
        padded = local.new_zeros((longest,) + tuple(local.shape[1:]))
        padded[:local.shape[0]] = local
        pieces = [torch.empty_like(padded) for _ in counts]
        dist.all_gather(pieces, padded.contiguous())
        return torch.cat([piece[:n] for piece, n in zip(pieces, counts)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        # every rank computed the loss from every row: the gradient of a row is the sum over ranks
        total = grad.contiguous().clone()
        dist.all_reduce(total, op=dist.ReduceOp.SUM)
        start = sum(ctx.counts[:ctx.rank])
        return total[start:start + ctx.counts[ctx.rank]], None, None


def gather_rows(local: torch.Tensor, counts: Sequence[int], group: ProcessGroup) -> torch.Tensor:
    """Concatenate every rank's ``local`` rows, in rank order; differentiable.

    Parameters
    ----------
    local : (counts[rank], ...) tensor of this rank.
    counts : rows held by each rank (every rank knows them: it drew the same batch).

    Returns
    -------
    (sum(counts), ...) tensor, identical on every rank. Its backward hands each rank the sum over
    ranks of the cotangents of its own rows.
    """
    counts = tuple(int(c) for c in counts)
    if local.shape[0] != counts[group.rank]:
        raise ValueError(f"rank {group.rank} holds {local.shape[0]} rows but counts say {counts[group.rank]}")
    return _GatherRows.apply(local, counts, group.rank)


def all_reduce_gradients(parameters: Sequence[torch.Tensor]) -> None:
    """Replace each parameter's gradient by its sum over ranks (one flat all-reduce; missing grads count as 0)."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for p in parameters:
        n = p.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


class Shard:
    """This rank's part of each training step: the batch's time points inside its segment of the valid domain.

    The rank embeds those time points from the frames of its segment only, and the embeddings of all
    ranks are gathered (differentiably) into batch order, so every rank holds the whole batch.
    """

    def __init__(self, group: ProcessGroup, embedder: Embedder, neural: torch.Tensor, domain: Domain):
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
            local = torch.zeros(0, output_dim(embedder), device=index.device, requires_grad=True)
        gathered = gather_rows(local.float(), counts, self.group)
        order = torch.argsort(owner, stable=True)  # gathered rows come rank by rank, in batch order within a rank
        return gathered[torch.argsort(order)]

    def regularizer(self, embedder: Embedder, windows: torch.Tensor, reference: torch.Tensor, coverage, plan,
                    generator: torch.Generator) -> torch.Tensor:
        """This rank's share of the regularizer of ``reference`` (R,): the shares of all ranks sum to it."""
        n, dim = len(reference), output_dim(embedder)
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
