"""`python -m mapsafe`: the same as the `mapsafe` command."""

import sys

from .cli import main

sys.exit(main())
