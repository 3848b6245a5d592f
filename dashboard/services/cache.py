"""Where the shared results cache and background jobs live."""
import os
from pathlib import Path

from core.versions.pipeline import PROJECT_ROOT

__all__ = ["CACHE_DIR"]

# Default only: Services.from_env and create_app read SEGMENTLENS_CACHE_DIR again when they run.
CACHE_DIR = Path(os.environ.get("SEGMENTLENS_CACHE_DIR", PROJECT_ROOT / ".cache"))
