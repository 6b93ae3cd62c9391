"""``python -m tryon_operator.ctl``: the same as ``tryonctl``."""

import sys

from .cli import main

sys.exit(main())
