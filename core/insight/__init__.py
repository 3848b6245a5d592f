"""Describing segments: the analysis of a version, profiles and personas, explanation rules (IMM tree), EDA, reports, drift, monitoring and segments over time."""
