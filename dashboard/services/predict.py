"""Services for scoring: the live model (API), the what-if form and its helpers."""
from __future__ import annotations

import numpy as np
import pandas as pd

from core.insight import profiles
from core.versions.exports import to_safe_csv

from .analysis import Analysis, AnalysisService, scaled
from .results import ResultCache
from .store import LiveModel, ModelStore, padded_names

__all__ = ["PredictService", "LiveModel"]


class PredictService:
    """Scoring for the API and /predict: the live model, the what-if form and its helpers."""

    def __init__(self, analyses: AnalysisService, store: ModelStore, results: ResultCache):
        self.analyses, self.store, self.results = analyses, store, results

    def live_model(self) -> LiveModel:
        """The served model with its metadata and names (ModelStore.live: one stat() per call when unchanged)."""
        return self.store.live()

    def _analysis_model(self):
        """The analysis with the model and names of the same version (the live ones when they match)."""
        a = self.analyses.analysis()
        live = self.live_model()
        if live.version == a.version:
            return a, live.model, live.names
        model, meta = self.analyses.model(a.version)
        return a, model, padded_names(meta, a.k)

    def predict_form(self) -> dict:
        """Form spec of the what-if page: per feature and raw field, label, data quartiles/min/max, accepted range."""
        a = self.analyses.analysis()
        return self.results.cached(("predict_form_units", a.version, a.fingerprint), lambda: predict_form_spec(a))

    def map_background(self, max_points: int = 2500) -> dict:
        """A seeded, downsampled sample of the customers' 2D PCA coordinates with their segments."""
        a = self.analyses.analysis()
        return self.results.cached(("predict_map", a.version, a.fingerprint, max_points),
                                   lambda: map_sample(a, max_points))

    def segment_cards(self) -> list[dict]:
        """Per segment: description, last-campaign response (with 95 % interval) and recommended products."""
        a = self.analyses.analysis()
        return self.results.cached(("predict_cards", a.version, a.fingerprint), lambda: segment_cards(a))

    def what_if(self, texts: dict) -> dict:
        """Score a hypothetical customer typed into the form: errors per field, or the full explanation.

        ``texts`` and the answer's ``values`` and ``flips`` are keyed by the form's fields, in the data's own
        units (``Frequency``, not ``Frequency_log``).
        """
        from core.reading import schema
        from core.versions import scoring

        a, model, names = self._analysis_model()
        form = self.predict_form()
        # The form is in the data's own units (orders, money); a feature clustered on a log scale gets the
        # same signed log the API applies to a field given in units (core.reading.mapping), so both answer alike.
        specs = {f["feature"]: f for f in form["features"]}
        errors, values, shown = {}, [], {}
        for feature in model.features:
            spec = specs.get(feature, {"name": feature})
            field, bounds = spec["name"], (spec["low"], spec["high"]) if "low" in spec else None
            value, message = parse_field(field, texts.get(field), bounds)
            if message:
                errors[field] = message
                values.append(None)
                continue
            shown[field] = value
            values.append(float(schema.from_units(feature, value)))
        if errors:
            return {"errors": errors}
        seg, conf, typ, dists = model.score_one(values)
        from ..monitoring import record_prediction

        record_prediction(a.version, [values], [seg], [conf], [typ], "what_if")  # aggregated counters only
        ranges = {f["name"]: (f["min"], f["max"]) for f in form["features"]}
        whole = {f["name"] for f in form["features"] if f["integer"]}
        flips = scoring.flip_points(values, model.mean_.tolist(), model.scale_.tolist(), model.centroids_.tolist(),
                                    model.features, ranges, whole, in_units=True)
        z = (np.asarray(values, dtype=float) - model.mean_) / model.scale_
        point = a.projection.transform(z[None, :])[0]
        return {
            "errors": {}, "version": a.version, "features": [specs.get(f, {"name": f})["name"] for f in model.features],
            "values": shown, "logged": [f["name"] for f in form["features"] if f.get("logged")], "segment": seg, "name": names[seg], "names": names,
            "confidence": conf, "typicality": typ, "distances": dists,
            "words": scoring.describe(seg, conf, typ, dists, names),
            "flips": [f.to_dict() for f in flips], "point": [float(point[0]), float(point[1])],
            "card": self.segment_cards()[seg],
        }

    def derive_features(self, texts: dict) -> tuple[dict, dict]:
        """Features computed from raw fields typed into the form: ({feature: value}, {field: error})."""
        from core.versions import scoring

        form = self.predict_form()
        derived, errors = {}, {}
        for group in form["raw"]:
            parts = {}
            for field_spec in group["fields"]:
                name = field_spec["name"]
                value, message = parse_field(name, texts.get(name), (field_spec["low"], field_spec["high"]))
                if message:
                    errors[name] = message
                else:
                    parts[name] = value
            if len(parts) == len(group["fields"]):
                derived[group["feature"]] = scoring.derive(group["feature"], parts)
        return derived, errors

    def typical_member(self, segment: int) -> dict:
        """Fields (features and raw columns) of the member closest to a segment's centre."""
        a, model, _ = self._analysis_model()
        members = np.flatnonzero(a.labels == int(segment))
        if not len(members):
            raise ValueError(f"segment {segment} has no members")
        Z = scaled(a)[members]
        best = members[int(np.argmin(((Z - model.centroids_[int(segment)]) ** 2).sum(axis=1)))]
        return _row_fields(a, best)

    def customer_fields(self, customer_id) -> dict:
        """Fields of an existing customer by ID; ValueError naming the ID when there is none."""
        a = self.analyses.analysis()
        text = str(customer_id if customer_id is not None else "").strip()
        try:
            wanted = int(float(text.replace(",", "")))
        except ValueError:
            raise ValueError(f"a customer ID is a whole number (got {text[:20]!r})") from None
        hits = np.flatnonzero(a.frame["ID"].to_numpy() == wanted)
        if not len(hits):
            if a.sampled:
                raise ValueError(f"customer {wanted} is not among the {a.basis['rows']:,} customers sampled from "
                                 f"{a.source}; score any customer with the API (POST /api/v1/predict)")
            raise ValueError(f"no customer with ID {wanted} in {a.source}")
        return _row_fields(a, hits[0])

    def scenarios_csv(self, scenarios: list[dict]) -> str:
        """Spreadsheet-safe CSV of saved what-if scenarios: one row each, features then the answer."""
        return to_safe_csv(pd.DataFrame(scenarios))

    def segments_summary(self) -> list[dict]:
        """Per segment (API): size, share, name, description, feature means, last-campaign response rate."""
        a, _, names = self._analysis_model()
        rows = self.results.cached(("api_segments_units", a.version, a.fingerprint), lambda: segments_table(a))
        return [dict(row, name=names[row["segment"]]) for row in rows]


def _quantiles(values: np.ndarray) -> dict:
    """Min, quartiles, median and max of a column, as plain floats."""
    q = np.quantile(values, [0.0, 0.25, 0.5, 0.75, 1.0]) if len(values) else np.zeros(5)
    return dict(zip(("min", "q25", "median", "q75", "max"), (float(v) for v in q)))


def accepted_range(name: str, values: np.ndarray, mapped: bool = False) -> tuple[float, float]:
    """The range a field accepts: the schema's for the canonical fields, else one around the observed values.

    A feature of a mapped file (RFM, a custom column) has no schema bounds: values from 0 (or the
    observed minimum less one observed span, when the data has negatives) up to the observed maximum
    plus one span are accepted, so a what-if can go beyond the data but not to absurd numbers.
    """
    from core.versions import scoring
    from core.reading.mapping import accepted_range as around

    if name in scoring.FIELD_BOUNDS and not mapped:
        return scoring.field_bounds(name)
    if not len(values):
        return 0.0, 1e9
    return around(float(values.min()), float(values.max()))  # the API accepts the same (core.reading.mapping)


def parse_field(name: str, text, bounds: tuple | None) -> tuple[float | None, str | None]:
    """Parse what was typed into a field: core.versions.scoring's rules for canonical fields, else the same within ``bounds``."""
    from core.versions import scoring

    if bounds is None or (name in scoring.FIELD_BOUNDS and tuple(bounds) == tuple(scoring.field_bounds(name))):
        return scoring.parse_text(name, text)
    if text is None or (isinstance(text, str) and not text.strip()):
        return None, "enter a value"
    try:
        value = float(str(text).strip().replace(" ", "").replace(",", "").replace("_", ""))
    except ValueError:
        return None, f"enter a number (got {str(text).strip()[:20]!r})"
    low, high = bounds
    if not np.isfinite(value) or value < low or value > high:
        return None, f"must be between {scoring.format_value(low)} and {scoring.format_value(high)}"
    return value, None


def _field_spec(frame: pd.DataFrame, name: str, mapped: bool = False) -> dict:
    from core.reading import schema

    values = frame[name].to_numpy(dtype=float) if name in frame else np.empty(0)
    values = values[np.isfinite(values)]
    integer = bool(len(values)) and bool(np.all(values == np.round(values)))
    low, high = accepted_range(name, values, mapped)
    spec = {"name": name, "feature": name, "logged": False,
            "label": schema.FEATURE_LABELS.get(name, name.replace("_", " ")),
            "integer": integer, "low": low, "high": high, **_quantiles(values)}
    if name == "Year_Birth":
        spec["label"] = "Year of birth"
    return spec


def _feature_spec(frame: pd.DataFrame, feature: str, mapped: bool) -> dict:
    """A model feature's form field: a feature clustered on a log scale is typed as its column, in units."""
    from core.reading import schema

    field = schema.unit_field(feature)
    if field == feature or field not in frame:
        return _field_spec(frame, feature, mapped)
    return dict(_field_spec(frame, field, mapped), feature=feature, logged=True)


def predict_form_spec(analysis: Analysis) -> dict:
    """The what-if form: each feature's field (in the data's own units), statistics and accepted range.

    ``features`` has one field per model feature, model order (``feature`` names the model's column,
    ``name`` the field typed: ``Monetary`` for ``Monetary_log``, ``logged`` says so); ``raw`` the raw
    fields a feature is computed from (birth year for Age, spend per category for total spend), only
    when the data has them.
    """
    from core.versions import scoring

    frame = analysis.frame
    # A model trained through a column mapping accepts its data's observed ranges (as its API does).
    mapped = (getattr(analysis, "meta", None) or {}).get("input", "canonical") != "canonical"
    features = [_feature_spec(frame, f, mapped) for f in analysis.features]
    raw = [{"feature": f, "fields": [_field_spec(frame, p) for p in scoring.DERIVATIONS[f]]}
           for f in analysis.features if f in scoring.DERIVATIONS and all(p in frame for p in scoring.DERIVATIONS[f])]
    return {"features": features, "raw": raw}


def map_sample(analysis: Analysis, max_points: int) -> dict:
    """Seeded uniform sample of the 2D PCA coordinates (the map never ships every customer)."""
    n = len(analysis.coords)
    rows = np.arange(n)
    if n > max_points:
        rows = np.sort(np.random.default_rng(0).choice(n, max_points, replace=False))
    ratio = analysis.projection.explained_variance_ratio
    return {"x": analysis.coords[rows, 0].tolist(), "y": analysis.coords[rows, 1].tolist(),
            "segment": analysis.labels[rows].astype(int).tolist(), "n_total": int(n),
            "explained": [float(r) for r in ratio[:2]]}


def segment_cards(analysis: Analysis) -> list[dict]:
    """What each segment answers to: response to the last campaign, other campaigns, products it over-buys."""
    out = []
    camp = analysis.campaigns
    for seg in range(analysis.k):
        rows = camp[camp["segment"] == seg] if len(camp) else camp
        response = None
        campaigns = []
        for r in rows.itertuples(index=False):
            item = {"campaign": r.campaign, "rate": float(r.rate), "low": float(r.low), "high": float(r.high),
                    "n": int(r.n)}
            if r.campaign == "Response":
                response = item
            else:
                campaigns.append(item)
        lift = analysis.lift.loc[seg] if seg in analysis.lift.index else pd.Series(dtype=float)
        products = [{"product": str(p), "lift": float(v)} for p, v in lift.sort_values(ascending=False).items()
                    if v >= profiles.LIFT_THRESHOLD]
        persona = analysis.personas[seg] if seg < len(analysis.personas) else None
        out.append({"segment": seg, "description": persona.description if persona else "",
                    "response": response, "campaigns": campaigns, "products": products})
    return out


def segments_table(analysis: Analysis) -> list[dict]:
    """Per segment: size, share, description, means of the model's features (in units), response rate (JSON-ready)."""
    from core.reading import schema

    frame, labels = analysis.frame, analysis.labels
    # In the data's own units: a feature clustered on a log scale by its column (mean orders, not mean log).
    fields = [schema.unit_field(f) if schema.unit_field(f) in frame else f for f in analysis.features]
    means = frame[fields].groupby(labels).mean().reindex(range(analysis.k))
    response = frame["Response"].groupby(labels).mean().reindex(range(analysis.k)) if "Response" in frame else None
    out = []
    for seg in range(analysis.k):
        rate = None if response is None or pd.isna(response.loc[seg]) else float(response.loc[seg])
        out.append({
            "segment": seg, "size": int(analysis.sizes.loc[seg, "n"]), "share": float(analysis.sizes.loc[seg, "share"]),
            "description": analysis.personas[seg].description if seg < len(analysis.personas) else "",
            "means": {f: (None if pd.isna(means.loc[seg, f]) else float(means.loc[seg, f])) for f in fields},
            "response_rate": rate,
        })
    return out


def _row_fields(analysis: Analysis, position: int) -> dict:
    """One customer's model features and the raw columns they derive from, as plain numbers."""
    from core.versions import scoring

    from core.reading import schema

    row = analysis.frame.iloc[int(position)]
    # The form's fields: a logged feature's column in units (Frequency for Frequency_log).
    names = [schema.unit_field(f) if schema.unit_field(f) in analysis.frame else f for f in analysis.features]
    for feature in analysis.features:
        names += [p for p in scoring.DERIVATIONS.get(feature, ()) if p in analysis.frame]
    out = {}
    for name in dict.fromkeys(names):
        value = float(row[name])
        out[name] = int(value) if value == int(value) else round(value, 2)
    out["ID"] = int(row["ID"]) if "ID" in analysis.frame else None
    return out

