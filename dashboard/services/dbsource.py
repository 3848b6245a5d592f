"""A database source on the /data page: saved by an admin, copied for a preview, retrained from.

The copy goes through :func:`core.reading.postgres.local_copy` (COPY into a temporary file) and is then
kept as an upload, so the preview, the column mapping, the k advice and the retrain are the
upload's own (``core.versions.pipeline.make_version`` through :class:`~.uploads.UploadService`). The
version records the database (URL without password, and the query) as its source. Every action
here is for admins (``db_source``): the services check the caller; the page only mirrors it.
"""
from __future__ import annotations

from core.reading import db_source
from core.reading import postgres
from core.versions.registry import Registry

from .audit import Auditor
from .uploads import UploadService

__all__ = ["DbSourceService"]

_ACTION = "db_source"


class DbSourceService:
    """The saved database source of a registry, its preview copy and the version provenance of a retrain."""

    def __init__(self, registry: Registry, uploads: UploadService, auditor: Auditor):
        self.registry, self.uploads, self.auditor = registry, uploads, auditor

    def saved(self) -> dict | None:
        """The saved source (no password is ever in it), or None."""
        return db_source.load(self.registry.root)

    def save(self, url: str, query: str | None, *, actor: str) -> dict:
        """Check and keep a source (PostgresError with one line when it cannot be one); audited."""
        try:
            source = db_source.save(self.registry.root, url, query, actor)
        except postgres.PostgresError as exc:
            self.auditor.record(actor, _ACTION, "-", "failed", str(exc))
            raise
        self.auditor.record(actor, _ACTION, source["url"], "ok", "saved" + (" with a query" if source["query"] else ""))
        return source

    def preview(self, *, actor: str) -> dict:
        """Copy the saved source and keep the copy as an upload; its report (token, checks, preview)."""
        source = self.saved()
        if source is None:
            raise postgres.PostgresError("no database source is saved; enter its URL first")
        try:
            with postgres.local_copy(source["url"], source.get("query")) as copy:
                data = copy.path.read_bytes()
        except postgres.PostgresError as exc:
            self.auditor.record(actor, _ACTION, source["url"], "failed", f"copy: {exc}")
            raise
        shown = (postgres.parse(source["url"], source.get("query")).table or "query")[:80]
        report = self.uploads.accept_bytes(data, f"{shown} (database)", actor=actor)
        db_source.mark_copy(self.registry.root, report["token"])
        self.auditor.record(actor, _ACTION, source["url"], "ok", f"copied {copy.rows:,} rows, token {report['token']}")
        return dict(report, source=source["display"], rows_copied=copy.rows)

    def provenance(self, token) -> dict | None:
        """What a version retrained from ``token`` records as its source (None unless it is the database copy)."""
        return db_source.provenance(self.registry.root, token)

    def record(self, version: str, provenance: dict) -> None:
        """Name the database as the version's source (the URL without password, the query)."""
        self.registry.update_meta(version, **provenance)
