"""Fitting and judging segments: the SegmentationModel, scaling, k-means measures, criteria for choosing k, bootstrap stability, segment matching, projections."""
