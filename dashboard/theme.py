"""Segment colours and shared chart styling (one colour per segment, everywhere)."""
from __future__ import annotations

__all__ = ["SEGMENT_COLOURS", "segment_colour", "segment_colours", "segment_text_colour", "contrast_ratio",
           "BOOTSWATCH_THEME", "FONT_FAMILY", "TEXT_DARK", "TEXT_LIGHT"]

# Colour-blind-safe first (Okabe-Ito), with no two of the first six close in hue (orange and
# vermillion overlaid were hard to tell apart); segment i always takes entry i. Segment 5 is Paul Tol's wine
# (his purple and Okabe-Ito's blue look alike with deuteranopia: tests/test_figures_describe.py simulates the
# three common colour-vision deficiencies). Grey and vermillion are a shade darker than their sources so that
# a badge's text on them reaches 4.5:1 (segment_text_colour).
SEGMENT_COLOURS = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#882255",
    "#8C564B", "#737373", "#BCBD22", "#BF5500", "#393B79", "#17BECF",
]
TEXT_DARK, TEXT_LIGHT = "#212529", "#ffffff"
BOOTSWATCH_THEME = "litera"  # a theme whose CSS imports no web font, so nothing is fetched at run time
FONT_FAMILY = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"


def segment_colour(segment: int) -> str:
    """The colour of one segment (cycles after twelve)."""
    return SEGMENT_COLOURS[int(segment) % len(SEGMENT_COLOURS)]


def segment_colours(k: int) -> list[str]:
    """Colours of segments 0..k-1."""
    return [segment_colour(i) for i in range(k)]


def _luminance(hex_colour: str) -> float:
    """WCAG 2.1 relative luminance of an sRGB colour ("#rrggbb")."""
    h = hex_colour.lstrip("#")
    channels = [int(h[i:i + 2], 16) / 255 for i in (0, 2, 4)]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast_ratio(a: str, b: str) -> float:
    """WCAG contrast ratio of two colours (1 to 21; AA asks 4.5 for text, 3 for large text and UI parts)."""
    hi, lo = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (hi + 0.05) / (lo + 0.05)


def segment_text_colour(segment: int) -> str:
    """Text colour on a segment's colour: white or near-black, whichever contrasts more (AA on every entry)."""
    fill = segment_colour(segment)
    return max((TEXT_LIGHT, TEXT_DARK), key=lambda text: contrast_ratio(fill, text))
