"""Segments over time on the served version's order log (the /stability page's migration section and the API)."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from core.insight.migration import (
    Migration, movers, movers_csv, rename, run_for_version, store, stored, version_log,
)

__all__ = ["MigrationService", "migration_service"]


class MigrationService:
    """Snapshots, transitions and movers of the served version (core.insight.migration), cached and stored with it."""

    def __init__(self, registry, analyses, results):
        self.registry, self.analyses, self.results = registry, analyses, results

    def log(self) -> dict:
        """The served version's log as core.insight.migration.version_log gives it (NotALogError for a customer table)."""
        _, meta = self.analyses.model()
        path = self.analyses.data_path_for(meta)
        return version_log(self.registry, meta["version"], path)

    def _state(self, log: dict) -> tuple:
        st = Path(log["path"]).stat()
        return log["version"], str(log["path"]), st.st_mtime_ns, st.st_size

    def migration(self, every: str = "month", start: str | None = None, end: str | None = None) -> dict:
        """Snapshots and transitions (Migration.to_dict plus model_version and source).

        The whole log's result is read from the version's ``migration`` artifact when it describes the
        log as it is now, else computed once and stored there; a from/to range is computed and cached.
        """
        log = self.log()
        whole = start is None and end is None and log["own"]

        def compute() -> dict:
            if whole:
                found = stored(self.registry, log, every)
                if found is not None:
                    return found
                result = run_for_version(log, every=every)
                return store(self.registry, log, every, result)
            return run_for_version(log, every=every, start=start, end=end).to_dict()
        run = self.results.cached(("migration", *self._state(log), every, start, end), compute)
        return {"model_version": log["version"], "source": log["name"], **rename(run, log["names"])}

    def _kept(self, from_date: str, to_date: str) -> Migration:
        log = self.log()
        return self.results.local(("migration-movers", *self._state(log), from_date, to_date),
                                   lambda: run_for_version(log, dates=[from_date, to_date], keep=[from_date, to_date]))

    def movers(self, from_date: str, to_date: str, from_segment=None, to_segment=None) -> pd.DataFrame:
        """Customers who moved between two dates (filtered by segments), with features before and after."""
        # With the names of now (a segment renamed since the snapshots were kept).
        result = replace(self._kept(from_date, to_date), names=self.log()["names"])
        return movers(result, from_date, to_date, from_segment=from_segment, to_segment=to_segment)

    def movers_csv(self, from_date: str, to_date: str, from_segment=None, to_segment=None) -> str:
        """The movers as formula-safe CSV."""
        return movers_csv(self.movers(from_date, to_date, from_segment, to_segment))


def migration_service(services) -> MigrationService:
    """The migration service over the app's Services (registry, analyses, result cache)."""
    return MigrationService(services.registry, services.analyses, services.results)
