"""Options and helpers shared by the ``python -m core`` sub-commands (one wording for each)."""
from __future__ import annotations

import argparse
import sys
import time

__all__ = ["progress", "whole_number", "add_models", "version_or_active", "check_features"]


def progress(quiet: bool):
    """A ``report(message)`` printing the seconds since now and the message on stderr (nothing when quiet)."""
    start = time.perf_counter()

    def report(message: str) -> None:
        if not quiet:
            print(f"[{time.perf_counter() - start:6.2f}s] {message}", file=sys.stderr, flush=True)
    return report


def whole_number(kind: str, low: int = 1):
    """An argparse ``type`` accepting whole numbers of at least ``low``; the message names the option ``kind``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{kind} must be a whole number, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{kind} must be at least {low}, got {value}")
        return value
    return parse


def add_models(p: argparse.ArgumentParser) -> None:
    """Add ``--models DIR`` (the model registry folder)."""
    p.add_argument("--models", metavar="DIR", help="model registry folder (default: $SEGMENTLENS_MODELS or models/)")


def version_or_active(registry, version: str | None = None) -> str:
    """``version``, else the registry's active one; a ValueError (exit status 2) when it holds no model."""
    version = version or registry.active_version()
    if version is None:
        raise ValueError(f"no model in {registry.root}; train one first with `python -m core train`")
    return version


def check_features(model, frame, what: str = "the file") -> None:
    """A ValueError (exit status 2) naming the model's features ``frame`` lacks."""
    missing = [f for f in model.features if f not in frame]
    if missing:
        raise ValueError(f"{what} lacks the model's feature(s) {', '.join(missing)}")
