"""Former home of :mod:`xcebra.training.distributed` (data-parallel training over ``torchrun`` / ``srun``).

Kept so that ``xcebra.ddp.current_group`` and the other names below keep working; new code imports
them from :mod:`xcebra.training.distributed`.
"""

from .training.distributed import ProcessGroup, all_reduce_gradients, current_group, gather_rows, is_rank_zero

__all__ = ["ProcessGroup", "current_group", "is_rank_zero", "gather_rows", "all_reduce_gradients"]
