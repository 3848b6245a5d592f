"""SegmentLens core: the customer-segmentation engine (pandas, numpy; no Dash).

Modules: schema, loading, cleaning, features, model, selection, profiles,
projection, registry, pipeline, exports, synth, cli.
"""
__all__: list[str] = []
__version__ = "0.1.0"
