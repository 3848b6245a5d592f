"""``python -m core``: the SegmentLens command line."""
import sys

from .cli import main

sys.exit(main())
