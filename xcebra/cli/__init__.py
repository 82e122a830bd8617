"""The ``xcebra`` command: ``demo``, ``fit``, ``fit-many``, ``embed``, ``attribute``, ``report`` and ``benchmark``.

One module per subcommand (:mod:`.demo`, :mod:`.fit`, :mod:`.fit_many`, :mod:`.embed`, :mod:`.attribute`,
:mod:`.report`, :mod:`.benchmark`), each with ``add_parser`` and ``run``; :mod:`.app` assembles them,
:mod:`.config` reads TOML configs, :mod:`._common` holds what the subcommands share.

Every subcommand's ``--help`` ends with an example. Data files are ``.npz``, ``.npy``, ``.h5`` /
``.hdf5`` or ``.nwb`` (see :mod:`xcebra.datasets.io`); arrays are named by ``--neural KEY`` and
``--label NAME=KEY``. A problem with the input ends in one line on stderr, ``xcebra: error: ...``,
and exit status 1 (2 for wrong command-line usage); ``--debug`` shows the traceback instead.
Logging goes to stderr (warnings by default, ``-v`` for progress messages); progress bars follow
``--quiet``.

This is the only package that prints.
"""

from .app import build_parser, main
from .config import NONE_IN_CONFIG, config_from_table, config_parameters, load_config, objective_fields, parse_param_options
from .fit_many import _slurm_arguments, load_manifest  # noqa: F401  (_slurm_arguments: tested here)

__all__ = ["main", "build_parser", "load_config", "config_from_table", "load_manifest", "config_parameters",
           "objective_fields", "parse_param_options", "NONE_IN_CONFIG"]
