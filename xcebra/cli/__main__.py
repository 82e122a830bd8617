"""``python -m xcebra.cli``: the ``xcebra`` command."""

import sys

from .app import main

if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
