"""Pure figure functions: data in, plotly Figure out (no Dash, no I/O)."""
