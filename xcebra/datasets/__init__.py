"""Built-in data: synthetic recordings with known ground truth, and RatInABox simulations of one or more animals.

``ratinabox`` and ``ratinabox_animals`` need the optional ``ratinabox`` package (``pip install "xcebra[demo]"``);
it is imported only when a simulation runs.
"""

from .animals import ratinabox_animals
from .io import list_keys, load_arrays
from .ratinabox import RatInABoxData, ratinabox
from .synthetic import SyntheticData, make_synthetic

__all__ = ["SyntheticData", "make_synthetic", "RatInABoxData", "ratinabox", "ratinabox_animals", "load_arrays",
           "list_keys"]
