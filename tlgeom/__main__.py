"""``python -m tlgeom`` is the ``tlgeom`` command line (see :mod:`tlgeom.cli`)."""

import sys

from .cli import main

sys.exit(main())
