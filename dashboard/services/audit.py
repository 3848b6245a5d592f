"""Appending the services' state changes to the audit log beside the registry (core.access.audit)."""
from __future__ import annotations

import sys

from core.versions.registry import Registry

__all__ = ["Auditor"]


class Auditor:
    """Writes one audit entry per state change: who, what, on which target, and how it ended."""

    def __init__(self, registry: Registry):
        self.registry = registry

    def record(self, actor: str, action: str, target: str, outcome: str, detail: str = "") -> None:
        """Append an entry; a log that cannot be written is reported on stderr, never hidden."""
        try:
            from core.access.audit import AuditLog

            AuditLog(self.registry.root).append(str(actor or "anonymous"), action, str(target), outcome,
                                                str(detail or "")[:500])
        except Exception as exc:  # the action itself happened (or was refused): say the entry is missing
            print(f"segmentlens: audit entry not written ({action} {target} {outcome}: {type(exc).__name__}: "
                  f"{exc})", file=sys.stderr, flush=True)
