"""Built-in data: synthetic recordings with known ground truth, and RatInABox simulations."""

from .synthetic import SyntheticData, make_synthetic


def ratinabox(*args, **kwargs):
    """Simulate a RatInABox recording (needs the ``demo`` extra); see :func:`xcebra.datasets.ratinabox.ratinabox`."""
    from .ratinabox import ratinabox as _simulate
    return _simulate(*args, **kwargs)


__all__ = ["SyntheticData", "make_synthetic", "ratinabox"]
