"""Options and helpers shared by the ``python -m core`` sub-commands (one wording for each)."""
from __future__ import annotations

import argparse
import sys
import time

__all__ = ["progress", "whole_number", "add_models"]


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
