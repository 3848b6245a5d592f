"""Campaign planning for the /campaigns page and the API: propensities (cached per model version), plans, results."""
from __future__ import annotations

import base64
import io
import math

import numpy as np
import pandas as pd

from core.campaigns import campaign
from core.campaigns.campaign import CampaignError, Economics
from core.campaigns.store import CampaignStore, audience_csv, jsonable, plan_record
from core.insight.profiles import LIFT_THRESHOLD
from core.versions.registry import Registry

from .analysis import AnalysisService
from .audit import Auditor
from .results import ResultCache

__all__ = ["CampaignService", "default_economics", "MAX_OUTCOMES_BYTES"]

MAX_OUTCOMES_BYTES = 20 * 1024 * 1024
_FALLBACK = (3.0, 11.0)
_API_FIELDS = ("cost", "revenue", "budget", "max_contacts", "holdout", "seed", "top_n")


def default_economics(frame: pd.DataFrame) -> tuple[float, float]:
    """Cost per contact and revenue per responder from the file's Z_CostContact/Z_Revenue (3 and 11 without)."""
    out = []
    for col, fallback in zip(("Z_CostContact", "Z_Revenue"), _FALLBACK):
        value = float(pd.to_numeric(frame[col], errors="coerce").median()) if col in frame else np.nan
        out.append(value if np.isfinite(value) and value > 0 else fallback)
    return out[0], out[1]


class CampaignService:
    """Response propensities of the served model's customers, plans and their measured results."""

    def __init__(self, registry: Registry, analyses: AnalysisService, results: ResultCache, auditor: Auditor, *,
                 access=None):
        self.registry, self.analyses, self.results, self.auditor = registry, analyses, results, auditor
        self.access = access  # dashboard.services.access.Access: campaign work needs an analyst

    def _who(self, target: str, actor: str | None) -> str:
        """The caller's name once their role allows campaign work (Forbidden otherwise)."""
        if self.access is None:
            return actor or "local"
        return self.access.require("campaign", target).name

    def store(self) -> CampaignStore:
        """Saved plans beside the registry."""
        return CampaignStore(self.registry.root)

    def propensity(self, seed: int = 42) -> campaign.Propensity:
        """Out-of-fold propensities of the served model's customers: fitted once per version, data and seed."""
        a = self.analyses.analysis()
        key = ("campaign-propensity", a.version, a.fingerprint, int(seed))
        return self.results.cached(key, lambda: campaign.fit_propensity(a.frame, a.labels, seed=int(seed), k=a.k))

    def defaults(self) -> tuple[float, float]:
        """Default cost and revenue of the served model's data."""
        return default_economics(self.analyses.analysis().frame)

    def segment_response(self) -> pd.DataFrame:
        """Expected response rate per segment with its interval, beside the last campaign's observed rate."""
        a = self.analyses.analysis()
        fitted = self.propensity()
        observed = a.frame["Response"] if "Response" in a.frame else None
        return campaign.segment_response(fitted.propensity, a.labels, a.k, observed)

    def plan(self, econ: Economics, *, top_n: int | None = None, segments=None) -> campaign.Plan:
        """A plan over the served model's customers (propensities with the economics' seed)."""
        a = self.analyses.analysis()
        fitted = self.propensity(econ.seed)
        return campaign.build_plan(a.frame["ID"].to_numpy(), a.labels, fitted.propensity, econ, k=a.k,
                                   top_n=top_n, segments=segments)

    def recommendations(self) -> dict[int, list[tuple[str, float]]]:
        """Per segment, (category, lift) from the strongest down: those at or above LIFT_THRESHOLD, else the top one."""
        lift = self.analyses.analysis().lift
        out = {}
        for s, row in lift.iterrows():
            ranked = [(str(c), float(v)) for c, v in row.sort_values(ascending=False).items()]
            out[int(s)] = [item for item in ranked if item[1] >= LIFT_THRESHOLD] or ranked[:1]
        return out

    def save_plan(self, econ: Economics, *, top_n: int | None = None, segments=None, actor: str | None = None) -> dict:
        """Build and save a plan with its audience (analysts); returns the record (audited)."""
        actor = self._who("plan", actor)
        try:
            plan = self.plan(econ, top_n=top_n, segments=segments)
            a = self.analyses.analysis()
            record = self.store().save(
                plan_record(plan, model_version=a.version, auc=self.propensity(econ.seed).auc,
                            names=self.analyses.segment_names(), source=a.source), audience_csv(plan))
        except CampaignError as exc:
            self.auditor.record(actor, "campaign", "plan", "failed", str(exc))
            raise
        self.auditor.record(actor, "campaign", record["id"], "ok",
                            f"target {record['n_targeted']}, holdout {record['n_holdout']}, "
                            f"cost {econ.cost:g}, revenue {econ.revenue:g}")
        return record

    def plan_from_json(self, body, *, actor: str | None = None) -> dict:
        """Plan and save from an API body (``cost``, ``revenue`` and optional ``budget``, ``max_contacts``,
        ``holdout``, ``seed``, ``top_n``, ``segments``); the saved record with ``auc`` and the ``audience`` rows.

        Raises CampaignError naming the field; nothing is saved then.
        """
        if not isinstance(body, dict):
            raise CampaignError("body: send a JSON object with cost and revenue")
        unknown = sorted(set(body) - set(_API_FIELDS) - {"segments"})
        if unknown:
            raise CampaignError(f"{unknown[0]}: unknown field; expected {', '.join(_API_FIELDS)}, segments")
        for name in _API_FIELDS:
            value = body.get(name)
            if value is None:
                if name in body and name in ("holdout", "seed"):
                    raise CampaignError(f"{name}: must be a number (leave it out for the default)")
                continue
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise CampaignError(f"{name}: must be a finite number")
            if name in ("max_contacts", "seed", "top_n") and not isinstance(value, int):
                raise CampaignError(f"{name}: must be a whole number, got {value}")
        if "top_n" in body and "segments" in body:
            raise CampaignError("segments: give either top_n or segments, not both")
        segments = body.get("segments")
        if segments is not None and (not isinstance(segments, list) or not segments or
                                     any(isinstance(v, bool) or not isinstance(v, int) for v in segments)):
            raise CampaignError("segments: must be a non-empty list of segment numbers")
        top_n = body.get("top_n")
        econ = Economics.checked(body.get("cost"), body.get("revenue"), body.get("budget"), body.get("max_contacts"),
                                 body.get("holdout"), body.get("seed"))
        record = self.save_plan(econ, top_n=None if top_n is None else int(top_n), segments=segments, actor=actor)
        audience = self.store().audience(record["id"])
        return jsonable({**record, "audience": audience.to_dict("records")})

    def plans(self) -> list[dict]:
        """Saved plans, newest first, with their results."""
        return self.store().plans()

    def audience_text(self, plan_id: str) -> str:
        """A saved plan's audience CSV (customer IDs: analysts)."""
        self._who(str(plan_id)[:40], None)
        return self.store().audience_text(plan_id)

    def record_results(self, plan_id: str, contents: str | None, filename: str | None, *,
                       actor: str | None = None) -> dict:
        """Check an uploaded outcomes file (dcc.Upload contents) against a plan and save what was measured (audited).

        Raises CampaignError with a message naming the field or rows; nothing is saved then.
        """
        actor = self._who(str(plan_id)[:40], actor)
        name = str(filename or "outcomes")[:80]
        try:
            record = self.store().get(plan_id)
            outcomes = self._read_upload(contents, name)
            audience = self.store().audience(plan_id)
            checked = campaign.read_outcomes(outcomes, audience)
            econ = record.get("economics") or {}
            measured = campaign.measure_results(audience, checked, cost=econ.get("cost"), revenue=econ.get("revenue"))
            saved = self.store().save_results(plan_id, {**measured, "file": name})
        except CampaignError as exc:
            self.auditor.record(actor, "campaign-results", str(plan_id)[:40], "failed", f"{name}: {exc}")
            raise
        self.auditor.record(actor, "campaign-results", plan_id, "ok", name)
        return saved

    @staticmethod
    def _read_upload(contents: str | None, name: str) -> pd.DataFrame:
        if not contents or "," not in contents:
            raise CampaignError("outcomes: choose a CSV file with columns ID, responded (0/1), optional revenue")
        try:
            data = base64.b64decode(contents.split(",", 1)[1], validate=True)
        except ValueError:
            raise CampaignError(f"outcomes: {name} could not be read") from None
        if len(data) > MAX_OUTCOMES_BYTES:
            raise CampaignError(f"outcomes: {name} is larger than {MAX_OUTCOMES_BYTES // (1024 * 1024)} MB")
        try:
            return pd.read_csv(io.BytesIO(data), sep=None, engine="python")
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise CampaignError(f"outcomes: {name} is not a readable CSV file "
                                f"({str(exc).splitlines()[0][:100] if str(exc) else 'empty'})") from None
