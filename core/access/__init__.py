"""Accounts, roles and sessions; the audit log; the checks a deployment runs at start."""
