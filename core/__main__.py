"""``python -m core``: the SegmentLens command line."""
import sys

from core.cli.commands import main

sys.exit(main())
