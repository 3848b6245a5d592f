"""Saved campaign plans and their measured results: JSON + CSV files beside the model registry.

``<registry>/campaigns/<plan id>.json`` holds the plan (economics, model version, expected figures),
``<plan id>.audience.csv`` its audience and ``<plan id>.results.json`` what was measured. Every file
is written atomically (``core.versions.registry.atomic_write``); nothing is pickled.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from core.campaigns.campaign import AUDIENCE_COLUMNS, CampaignError, Plan, read_audience
from core.fitting.algorithm_fit import jsonable  # also this module's, for its callers
from core.versions.exports import to_safe_csv
from core.versions.registry import atomic_write, models_dir

__all__ = ["CampaignStore", "plan_record", "audience_csv", "jsonable"]

_ID = re.compile(r"^plan-\d{8}T\d{6}-[0-9a-f]{6}$")


def audience_csv(plan: Plan) -> str:
    """The audience as spreadsheet-safe CSV: ID, segment, group, propensity (no other field).

    Parameters
    ----------
    plan : Plan

    Returns
    -------
    str
    """
    out = plan.audience[AUDIENCE_COLUMNS].copy()
    out["propensity"] = out["propensity"].round(6)
    return to_safe_csv(out)


def plan_record(plan: Plan, *, model_version: str, auc: float, names: list[str] | None = None,
                source: str = "") -> dict:
    """A plan as a JSON-ready dict (without its audience rows).

    Parameters
    ----------
    plan : Plan
    model_version : str
    auc : float
        Cross-validated AUC of the propensity model.
    names : list of str, optional
        Segment names at planning time.
    source : str
        The data the plan was made on.

    Returns
    -------
    dict
    """
    segs = plan.segments.reset_index().to_dict("records")
    if names:
        for row in segs:
            row["name"] = names[int(row["segment"])] if int(row["segment"]) < len(names) else ""
    return jsonable({
        "model_version": model_version, "auc": auc, "source": source, "economics": plan.economics.to_dict(),
        "mode": plan.mode, "best_n": plan.best_n, "break_even_n": plan.break_even_n,
        "break_even_propensity": plan.break_even_propensity, "notes": list(plan.notes),
        "expected_profit": plan.totals["expected_profit"], "n_targeted": plan.totals["n_targeted"],
        "n_holdout": plan.totals["n_holdout"], "totals": plan.totals, "segments": segs,
    })


class CampaignStore:
    """Plans and results under ``<registry>/campaigns``.

    Parameters
    ----------
    root : path-like, optional
        The model registry folder (default: $SEGMENTLENS_MODELS or models/).
    """

    def __init__(self, root: str | os.PathLike | None = None):
        self.dir = models_dir(root) / "campaigns"

    def _path(self, plan_id: str, suffix: str) -> Path:
        if not isinstance(plan_id, str) or not _ID.match(plan_id):
            raise CampaignError(f"no plan {str(plan_id)[:40]!r}")
        return self.dir / f"{plan_id}{suffix}"

    def save(self, record: dict, csv_text: str) -> dict:
        """Save a plan record and its audience CSV; returns the record with ``id``, ``created``, ``audience_sha256``.

        Parameters
        ----------
        record : dict
            From :func:`plan_record`.
        csv_text : str
            From :func:`audience_csv`.

        Returns
        -------
        dict
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        now = datetime.now(timezone.utc)
        plan_id = f"plan-{now:%Y%m%dT%H%M%S}-{secrets.token_hex(3)}"
        data = csv_text.encode("utf-8")
        record = {"id": plan_id, "created": now.isoformat(timespec="seconds"),
                  "audience_sha256": hashlib.sha256(data).hexdigest(), **record}
        atomic_write(self._path(plan_id, ".audience.csv"), data)
        atomic_write(self._path(plan_id, ".json"), json.dumps(jsonable(record), indent=1).encode("utf-8"))
        return record

    def plans(self) -> list[dict]:
        """Every saved plan, newest first, each with its ``results`` (None when not measured yet)."""
        if not self.dir.is_dir():
            return []
        out = []
        for path in self.dir.glob("plan-*.json"):
            if path.name.endswith(".results.json"):
                continue
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue  # a damaged record is skipped, never a 500
            if not isinstance(record, dict) or not _ID.match(str(record.get("id", ""))):
                continue
            record["results"] = self.results(record["id"])
            out.append(record)
        return sorted(out, key=lambda r: r.get("created", ""), reverse=True)

    def get(self, plan_id: str) -> dict:
        """One saved plan; CampaignError when there is none."""
        try:
            record = json.loads(self._path(plan_id, ".json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            raise CampaignError(f"no plan {plan_id!r}") from None
        record["results"] = self.results(plan_id)
        return record

    def audience_text(self, plan_id: str) -> str:
        """The saved audience CSV of a plan."""
        try:
            return self._path(plan_id, ".audience.csv").read_text(encoding="utf-8")
        except OSError:
            raise CampaignError(f"plan {plan_id!r} has no audience file") from None

    def audience(self, plan_id: str) -> pd.DataFrame:
        """The saved audience of a plan, checked."""
        import io

        return read_audience(pd.read_csv(io.StringIO(self.audience_text(plan_id))))

    def find_by_audience(self, data: bytes) -> dict | None:
        """The saved plan whose audience file has exactly these bytes (None when none has)."""
        digest = hashlib.sha256(data).hexdigest()
        return next((p for p in self.plans() if p.get("audience_sha256") == digest), None)

    def save_results(self, plan_id: str, results: dict) -> dict:
        """Save measured results for a plan (replacing earlier ones); returns them with ``measured``."""
        self.get(plan_id)
        results = {"measured": datetime.now(timezone.utc).isoformat(timespec="seconds"), **results}
        atomic_write(self._path(plan_id, ".results.json"), json.dumps(jsonable(results), indent=1).encode("utf-8"))
        return results

    def results(self, plan_id: str) -> dict | None:
        """Measured results of a plan (None when not measured)."""
        try:
            return json.loads(self._path(plan_id, ".results.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
