"""Campaigns: audiences, hold-out tests and their stored results."""
