"""`python -m tryon_model.cli`."""

import sys

from .main import main

sys.exit(main())
