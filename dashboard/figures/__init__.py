"""Pure figure functions: data in, plotly Figure out (no Dash, no I/O).

The house template is plotly's default for every figure made here. Plotly applies the
default template without validation when a Figure is created, whereas passing
``template=`` to ``update_layout`` re-validates the whole template: 6-25 ms per figure,
most of a warm callback's time.
"""
import plotly.io as pio

pio.templates.default = "plotly_white"
