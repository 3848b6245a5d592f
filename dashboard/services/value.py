"""Customer value of the active version (BG/NBD + Gamma-Gamma), stored with the version and read back."""
from __future__ import annotations

import json
import math
from pathlib import Path

from core.access.accounts import Forbidden, allowed, refusal
from core.reading.loading import DataFileError
from core.versions.registry import Registry, RegistryError
from core.value import (LOG_NEEDED, FitError, ValueInputError, compute_value, customer_value, read_purchase_days,
                        value_statistics, values_at)
from core.value.segments import customer_from_artifact, customers_artifact, segment_labels

__all__ = ["ValueService", "ValueUnavailable", "DEFAULTS"]

DEFAULTS = {"time_unit": "week", "horizon": None, "discount_rate": 0.10, "calibration_end": None}


class ValueUnavailable(Exception):
    """Value cannot be shown for the active version (one line for people: a note on the page, 404/409 in the API)."""


def _finite(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _midpoint(first: str, latest: str) -> str:
    import numpy as np

    a, b = np.datetime64(first, "D"), np.datetime64(latest, "D")
    return str(a + (b - a) // 2)


class ValueService:
    """Compute, store (artifacts ``value`` and ``value_customers``) and read a version's customer value."""

    def __init__(self, registry: Registry, store, auditor, *, access=None):
        self.registry = registry
        self.store = store
        self.auditor = auditor
        self.access = access  # dashboard.services.access.Access: recomputing and audiences need an analyst

    def _who(self, action: str, target: str, actor: str, role: str | None) -> str:
        """The caller's name once their role allows ``action`` (core.access.accounts.Forbidden otherwise).

        With an :class:`~.access.Access` the caller's role comes from the server's own state (the
        request's session or API key); without one (a bare ValueService) from ``role``.
        """
        if self.access is not None:
            return self.access.require(action, target).name
        if not allowed(role, action):
            message = refusal(role, action)
            self.auditor.record(actor, action, target, "refused", message)
            raise Forbidden(message, action)
        return actor

    def _version(self, version: str | None) -> tuple[str, dict]:
        version = version or self.registry.active_version()
        if version is None:
            raise ValueUnavailable("no model version is active")
        return version, self.registry.metadata(version)

    def source_of(self, version: str | None = None) -> Path:
        """The transaction log a version was trained on; ValueUnavailable when it has none."""
        version, meta = self._version(version)
        if meta.get("input") != "transactions":
            raise ValueUnavailable(f"{LOG_NEEDED}; version {version} was trained on a customer table")
        path = meta.get("data_path")
        if not path or not Path(path).is_file():
            raise ValueUnavailable(f"the transaction log of version {version} is not on this server any more; "
                                   "retrain it from the log")
        return Path(path)

    def stored(self, version: str | None = None) -> dict | None:
        """The stored value report of a version (None when not computed yet)."""
        version, _ = self._version(version)
        try:
            return self.registry.artifact_json(version, "value")
        except RegistryError:
            return None

    def report(self, version: str | None = None) -> dict:
        """The stored report, computed with the defaults on first use (the same numbers every time)."""
        found = self.stored(version)
        if found is not None:
            return found
        return self._compute(version, actor="system", **DEFAULTS)

    def compute(self, version: str | None = None, *, time_unit: str = "week", horizon: int | None = None,
                discount_rate: float = 0.10, calibration_end: str | None = None, actor: str = "local",
                role: str | None = None) -> dict:
        """Fit both models on the version's log, value every customer and store the results with the version.

        Without a calibration end the values use the whole log and the calibration check fits a
        second time on the first half of the log's dates. Analysts and admins only: the caller's
        role is checked here (``core.access.accounts.Forbidden`` otherwise, audited), whatever page or
        route calls; the defaults computed on first read (:meth:`report`) are the system's.
        """
        actor = self._who("retrain", f"value {version or 'active'}", actor, role)
        return self._compute(version, time_unit=time_unit, horizon=horizon, discount_rate=discount_rate,
                             calibration_end=calibration_end, actor=actor)

    def _compute(self, version: str | None, *, time_unit: str, horizon: int | None, discount_rate: float,
                 calibration_end: str | None, actor: str) -> dict:
        version, meta = self._version(version)
        path = self.source_of(version)
        try:
            days = read_purchase_days(path, name=meta.get("data_source") or path.name, mapping=self._mapping(version))
            data = value_statistics(days, time_unit=time_unit, calibration_end=calibration_end)
            labels, names = segment_labels(self.registry, version, path)
            names = list(meta.get("segment_names") or names)
            result = compute_value(data, horizon=horizon, discount_rate=discount_rate, labels=labels, names=names)
            report = result.report
            if calibration_end is None:
                check_end = _midpoint(days.first_date, days.latest_date)
                try:
                    check = compute_value(value_statistics(days, time_unit=time_unit, calibration_end=check_end),
                                          horizon=horizon, discount_rate=discount_rate, draws=0)
                    report["holdout"] = check.report["holdout"]
                    report["holdout"]["separate_fit"] = True
                    report["holdout"]["params"] = check.report["params"]
                except (ValueInputError, FitError) as exc:
                    report["notes"].append(f"no calibration check: {exc}")
        except (ValueInputError, FitError, DataFileError, ValueError) as exc:
            raise ValueUnavailable(str(exc)) from None
        report["version"] = version
        report = _finite(report)
        self.registry.put_artifact(version, "value", json.dumps(report, allow_nan=False).encode("utf-8"))
        self.registry.put_artifact(version, "value_customers", customers_artifact(result, data))
        self.auditor.record(actor, "value", version, "ok", f"time unit {time_unit}, horizon {report['horizon']}, "
                            f"discount {discount_rate:g}, calibration end {calibration_end or '-'}")
        return report

    def _mapping(self, version: str):
        from core.reading.mapping import Mapping

        saved = self.registry.artifact_json(version, "mapping")
        return Mapping.from_dict(saved, where=f"{version} mapping") if saved else None

    def customer(self, ident: str, version: str | None = None) -> dict | None:
        """One customer's value with intervals (None when the ID is unknown)."""
        report = self.report(version)
        version, _ = self._version(version)
        blob = self.registry.artifact(version, "value_customers")
        if blob is None:
            return None
        row = customer_from_artifact(blob, ident)
        if row is None:
            return None
        values = customer_value(report, row["frequency"], row["recency"], row["T"], row["repeat_value"])
        out = {"ID": row["ID"], "model_version": version, "time_unit": report["time_unit"],
               "horizon": report["horizon"], "discount_rate": report["discount_rate"],
               "frequency": int(row["frequency"]), "recency": row["recency"], "T": row["T"],
               "past_value": row["total_value"], **values}
        if "segment" in row:
            seg = int(row["segment"])
            names = {s["segment"]: s["name"] for s in report.get("segments", [])}
            out["segment"], out["segment_name"] = seg, names.get(seg, f"Segment {seg}")
        return _finite(out)

    def customer_table(self):
        """Every customer's ID, segment, past value, probability alive and CLV at the stored parameters."""
        import io

        import numpy as np
        import pandas as pd

        report = self.report()
        version, _ = self._version(None)
        blob = self.registry.artifact(version, "value_customers")
        if blob is None:
            raise ValueUnavailable("no per-customer value stored for this version; recompute it on /value")
        with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
            frame = pd.DataFrame({name: npz[name] for name in npz.files})
        if "segment" not in frame:
            frame["segment"] = -1
        values = values_at(report, frame["frequency"], frame["recency"], frame["T"], frame["repeat_value"])
        return pd.concat([frame, values], axis=1)

    def audience_csv(self, target: str, *, top_n=None, p_alive_below: float = 0.5, holdout: float = 0.1,
                     seed: int = 42, role: str | None = None, actor: str = "local") -> tuple[str, str]:
        """A value-targeted audience (core.campaigns.campaign.value_audience) as spreadsheet-safe CSV, and a one-line summary.

        Analysts and admins only (the caller's role is checked here, on the server; ``role`` only
        when no Access is wired); audited.
        """
        from core.campaigns.campaign import value_audience
        from core.versions.exports import to_safe_csv

        actor = self._who("campaign", f"value audience ({target})"[:120], actor, role)
        audience = value_audience(self.customer_table(), target, top_n=top_n, p_alive_below=p_alive_below,
                                  holdout=holdout, seed=seed)
        n_target = int((audience["group"] == "target").sum())
        summary = (f"{len(audience):,} customers ({n_target:,} to contact, {len(audience) - n_target:,} held out); "
                   f"expected CLV of the target {audience.loc[audience['group'] == 'target', 'clv'].sum():,.0f}")
        self.auditor.record(actor, "campaign", f"value audience ({target})", "ok", summary)
        return to_safe_csv(audience.round(6)), summary

    def slipping_csv(self, *, actor: str = "local", role: str | None = None) -> tuple[str, str]:
        """The stored valuable-but-slipping customers as spreadsheet-safe CSV, and its file name.

        Customer IDs with their value: analysts and admins only, like an audience (checked here; audited).
        """
        from core.versions.exports import to_safe_csv

        actor = self._who("campaign", "valuable-but-slipping customers", actor, role)
        report = self.stored()
        if report is None:
            raise ValueUnavailable("no customer value stored for this version yet")
        import pandas as pd

        frame = pd.DataFrame((report.get("slipping") or {}).get("customers") or [])
        self.auditor.record(actor, "campaign", "valuable-but-slipping customers", "ok", f"{len(frame):,} customers")
        return to_safe_csv(frame), f"valuable-but-slipping-{report.get('version', 'value')}.csv"

    def segment_values(self) -> dict | None:
        """Segment -> its value row of the stored report (None when none is stored; never computes)."""
        try:
            report = self.stored()
        except (ValueUnavailable, RegistryError, KeyError):
            return None
        if not report or not report.get("segments"):
            return None
        horizon = f"{report['horizon']} {report['time_unit']}s"
        return {s["segment"]: {**s, "horizon_text": horizon} for s in report["segments"]}
