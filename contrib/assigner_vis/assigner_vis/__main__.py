"""``python -m assigner_vis``."""

import sys

from assigner_vis.cli import main

sys.exit(main())
