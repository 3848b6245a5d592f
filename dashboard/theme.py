"""Segment colours and shared chart styling (one colour per segment, everywhere)."""
from __future__ import annotations

__all__ = ["SEGMENT_COLOURS", "segment_colour", "segment_colours", "BOOTSWATCH_THEME", "FONT_FAMILY"]

# Colour-blind-safe first (Okabe-Ito), with no two of the first six close in hue (orange and
# vermillion overlaid were hard to tell apart); segment i always takes entry i.
SEGMENT_COLOURS = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#6A3D9A",
    "#8C564B", "#7F7F7F", "#BCBD22", "#D55E00", "#393B79", "#17BECF",
]
BOOTSWATCH_THEME = "litera"  # a theme whose CSS imports no web font, so nothing is fetched at run time
FONT_FAMILY = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"


def segment_colour(segment: int) -> str:
    """The colour of one segment (cycles after twelve)."""
    return SEGMENT_COLOURS[int(segment) % len(SEGMENT_COLOURS)]


def segment_colours(k: int) -> list[str]:
    """Colours of segments 0..k-1."""
    return [segment_colour(i) for i in range(k)]
