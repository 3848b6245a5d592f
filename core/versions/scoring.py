"""Scoring hypothetical customers: validate inputs, derive features, explain the answer.

Shared by the prediction API and the what-if page, so both accept exactly the
same values and say the same thing about them. Nothing here touches the disk,
Flask or Dash, and the per-customer paths are plain Python (no pandas): a single
prediction must stay far below a millisecond.

Fields are named as in the data. A model feature may be given directly or
derived from the raw columns it comes from (``Year_Birth`` -> ``Age`` with the
reference year 2026, ``Kidhome + Teenhome`` -> ``Total_Children``, the six
``Mnt*`` columns -> ``Total_Spending``, the four ``Num*Purchases`` ->
``Total_Purchases``, ``AcceptedCmp1..5`` -> ``Campaigns_Accepted``); an
explicit feature wins over a derived one. Every recognised field that is
present must be valid, even when it is not needed, so that the API's OpenAPI
schema describes exactly what is accepted.

The "what would change the segment" analysis is exact: moving one feature with
the others held, the squared distance to centroid ``c`` in scaled units is
``(t - c_j)**2 + R_c`` with ``t`` the scaled value, so the difference between
two centroids' distances is *linear* in ``t`` and each pair swaps order at one
point. Walking from the current value to the nearest such crossing, up and
down, gives the flip points without any search.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from core.reading import schema
from core.reading.features import DEFAULT_REFERENCE_YEAR

__all__ = [
    "REFERENCE_YEAR", "MAX_BATCH", "BORDERLINE", "CLEAR", "DERIVATIONS", "FIELD_BOUNDS",
    "ValidationFailed", "field_bounds", "check_number", "parse_text", "check_id", "customer_values",
    "parse_request", "derive", "describe", "Flip", "flip_points", "customer_schema", "format_value",
]

REFERENCE_YEAR = DEFAULT_REFERENCE_YEAR
# Largest batch one request may carry (the body-size limit applies too).
MAX_BATCH = 10_000
# Confidence (1 - d1/d2) below this is "borderline", at or above CLEAR "clearly".
BORDERLINE = 0.15
CLEAR = 0.4
_MAX_ID = 2 ** 53 - 1  # integers JavaScript clients can echo back exactly
_MAX_ID_CHARS = 64

# Feature -> (raw columns it is the sum of, or Year_Birth for Age).
DERIVATIONS: dict[str, tuple[str, ...]] = {
    "Age": ("Year_Birth",),
    "Total_Children": ("Kidhome", "Teenhome"),
    "Total_Spending": tuple(schema.SPEND_COLUMNS),
    "Total_Purchases": tuple(schema.PURCHASE_COLUMNS),
    "Campaigns_Accepted": tuple(c for c in schema.CAMPAIGN_COLUMNS if c != "Response"),
}

# schema.BOUNDS leaves some upper ends open (income, spend, purchases). A what-if or an API
# call still needs a finite ceiling, far above anything in the data (the real file's largest
# income is 666,666, its largest category spend 1,493), so that absurd numbers are refused
# with a message instead of turning distances into infinities.
_CEILINGS = {
    "Income": 10_000_000,
    **{c: 100_000 for c in schema.SPEND_COLUMNS},
    **{c: 1_000 for c in schema.PURCHASE_COLUMNS},
    "Total_Spending": 600_000,
    "Total_Purchases": 4_000,
    "Customer_since": 36_500,
    "Campaigns_Accepted": 5,
}


def _bounds() -> dict[str, tuple[float, float]]:
    out = {}
    names = list(dict.fromkeys(schema.MODEL_FEATURES + [p for parts in DERIVATIONS.values() for p in parts]))
    for name in names:
        low, high = schema.BOUNDS.get(name, (0, None))
        out[name] = (0 if low is None else low, _CEILINGS[name] if high is None else high)
    # A birth year is accepted exactly when the age it gives is, so the two spellings agree.
    age_low, age_high = out["Age"]
    year_low, year_high = out["Year_Birth"]
    out["Year_Birth"] = (max(year_low, REFERENCE_YEAR - age_high), min(year_high, REFERENCE_YEAR - age_low))
    return out


#: Every numeric field the API and the form accept, with its inclusive (low, high) range.
FIELD_BOUNDS: dict[str, tuple[float, float]] = _bounds()


class ValidationFailed(ValueError):
    """Invalid customer data; ``errors`` lists every problem as {index?, field, message}.

    Parameters
    ----------
    errors : list of dict
    """

    def __init__(self, errors: list[dict]):
        self.errors = errors
        first = errors[0] if errors else {"field": "?", "message": "invalid"}
        super().__init__(f"{first.get('field')}: {first.get('message')}" + (
            f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""))


def field_bounds(name: str) -> tuple[float, float]:
    """Inclusive accepted range of a field.

    Parameters
    ----------
    name : str

    Returns
    -------
    (float, float)
    """
    return FIELD_BOUNDS[name]


def format_value(value: float) -> str:
    """A number as people read it: thousands separators, no needless decimals.

    Parameters
    ----------
    value : float

    Returns
    -------
    str
    """
    if value == int(value):
        return f"{int(value):,}"
    return f"{value:,.2f}".rstrip("0").rstrip(".")


def _kind(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


def check_number(name: str, value) -> tuple[float | None, str | None]:
    """Check one field's value: a finite JSON number within the field's range.

    Parameters
    ----------
    name : str
        A key of ``FIELD_BOUNDS``.
    value : object
        As decoded from JSON (booleans, text, null, lists and objects are refused).

    Returns
    -------
    value : float or None
    message : str or None
        Why the value is refused, or None when it is valid.
    """
    kind = type(value)
    if kind is not int and kind is not float:
        return None, f"must be a number, got {_kind(value)}"
    low, high = FIELD_BOUNDS[name]
    if kind is float and not math.isfinite(value):
        return None, f"must be a finite number, got {value}"
    if value < low or value > high:
        return None, f"must be between {format_value(low)} and {format_value(high)}, got {_short(value)}"
    return float(value), None


def _short(value) -> str:
    if abs(value) < 1e15:
        return format_value(float(value))
    if type(value) is int and value.bit_length() > 1000:  # too big even for a float
        return f"a number with {len(str(abs(value))) if value.bit_length() < 13000 else 'thousands of'} digits"
    return f"{float(value):.3g}"


_THOUSANDS = re.compile(r"^[+-]?\d{1,3}(,\d{3})+(\.\d+)?$")


def parse_text(name: str, text) -> tuple[float | None, str | None]:
    """Parse what someone typed into a form field and check it like :func:`check_number`.

    Parameters
    ----------
    name : str
    text : str, number or None
        ``"52,000"`` (thousands separators) and ``" 52000 "`` are accepted.

    Returns
    -------
    value : float or None
    message : str or None
    """
    if text is None or (isinstance(text, str) and not text.strip()):
        return None, "enter a value"
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return check_number(name, text)
    cleaned = str(text).strip().replace(" ", "").replace("_", "")
    if _THOUSANDS.match(cleaned):
        cleaned = cleaned.replace(",", "")
    try:
        value = float(cleaned)
    except ValueError:
        return None, f"enter a number (got {str(text).strip()[:20]!r})"
    return check_number(name, value)


def check_id(value) -> str | None:
    """Why an optional customer ID cannot be echoed back, or None when it can.

    Parameters
    ----------
    value : object

    Returns
    -------
    str or None
    """
    if type(value) is int:
        return None if 0 <= value <= _MAX_ID else f"must be an integer between 0 and {_MAX_ID}"
    if type(value) is str:
        return None if len(value) <= _MAX_ID_CHARS else f"must have at most {_MAX_ID_CHARS} characters"
    return f"must be an integer or a text of at most {_MAX_ID_CHARS} characters, got {_kind(value)}"


def derive(feature: str, parts: dict[str, float]) -> float:
    """Compute a feature from its raw columns.

    Parameters
    ----------
    feature : str
        A key of ``DERIVATIONS``.
    parts : dict
        The raw columns' values.

    Returns
    -------
    float
    """
    if feature == "Age":
        return float(REFERENCE_YEAR - parts["Year_Birth"])
    return float(sum(parts[p] for p in DERIVATIONS[feature]))


def customer_values(fields, features, index: int | None = None) -> tuple[list[float] | None, list[dict]]:
    """The model's feature values of one customer, from its fields.

    Parameters
    ----------
    fields : dict
        Field name -> value as decoded from JSON. Unknown fields are ignored;
        every known numeric field present must be valid.
    features : sequence of str
        The model's features, in its order.
    index : int, optional
        Position in a batch, copied into each error.

    Returns
    -------
    values : list of float or None
        None when there is any error.
    errors : list of dict
        ``{"index"?, "field", "message"}`` for every problem.
    """
    errors: list[dict] = []
    if not isinstance(fields, dict):
        err = {"field": "customer" if index is None else f"customers[{index}]",
               "message": f"must be an object with the customer's fields, got {_kind(fields)}"}
        if index is not None:
            err["index"] = index
        return None, [err]
    good: dict[str, float] = {}
    bounds = FIELD_BOUNDS
    for name, value in fields.items():
        if name in bounds:
            kind = type(value)
            # Inline fast path for the common case: a number well inside the range.
            if (kind is int or kind is float) and bounds[name][0] <= value <= bounds[name][1]:
                good[name] = float(value)
                continue
            number, message = check_number(name, value)
            if message:
                errors.append(_error(index, name, message))
            else:
                good[name] = number
        elif name == "ID":
            message = check_id(value)
            if message:
                errors.append(_error(index, "ID", message))
    values: list[float] = []
    for feature in features:
        if feature in good:
            values.append(good[feature])
            continue
        if feature in fields:
            continue  # already reported as invalid
        parts = DERIVATIONS.get(feature)
        if parts and all(p in good for p in parts):
            values.append(derive(feature, good))
        elif parts and any(p in fields for p in parts):
            missing = [p for p in parts if p not in fields]
            if missing:
                errors.append(_error(index, feature, f"is required: give {feature}, or all of "
                                     f"{', '.join(parts)} (missing {', '.join(missing)})"))
        else:
            alternative = f" (or {', '.join(parts)})" if parts else ""
            errors.append(_error(index, feature, f"is required{alternative}"))
    return (None if errors else values), errors


def _error(index, field, message) -> dict:
    error = {"field": field, "message": message}
    return error if index is None else {"index": index, **error}


def parse_request(body, features, max_batch: int = MAX_BATCH) -> tuple[list[list[float]], list, bool]:
    """Validate a prediction request body: one customer object, or ``{"customers": [...]}``.

    Parameters
    ----------
    body : object
        The decoded JSON body.
    features : sequence of str
    max_batch : int, default MAX_BATCH

    Returns
    -------
    rows : list of list of float
        Feature values per customer, in order.
    ids : list
        Each customer's ``ID`` (None when absent).
    batch : bool

    Raises
    ------
    ValidationFailed
        Listing every bad field of every customer.
    """
    if not isinstance(body, dict):
        raise ValidationFailed([{"field": "body", "message": f"must be a JSON object, got {_kind(body)}"}])
    if "customers" in body:
        customers = body["customers"]
        if not isinstance(customers, list):
            raise ValidationFailed([{"field": "customers", "message": f"must be a list, got {_kind(customers)}"}])
        if len(customers) > max_batch:
            message = f"at most {max_batch:,} customers per request, got {len(customers):,}"
            raise ValidationFailed([{"field": "customers", "message": message}])
        rows, ids, errors = [], [], []
        for i, customer in enumerate(customers):
            values, errs = customer_values(customer, features, i)
            if errs:
                errors.extend(errs)
                continue
            rows.append(values)
            ids.append(customer.get("ID"))
        if errors:
            raise ValidationFailed(errors)
        return rows, ids, True
    values, errors = customer_values(body, features)
    if errors:
        raise ValidationFailed(errors)
    return [values], [body.get("ID")], False


# ---------------------------------------------------------------------------- explanation
def describe(segment: int, confidence: float, typicality: float, distances, names) -> dict:
    """Plain words for an assignment: how clear it is, and how typical the customer is.

    Parameters
    ----------
    segment : int
    confidence : float
        1 - d1/d2 (0 = exactly between two segments).
    typicality : float
        Share of the segment's other members strictly farther from its centre (the customer itself excluded).
    distances : sequence of float
    names : sequence of str

    Returns
    -------
    dict
        ``headline``, ``confidence_text``, ``typicality_text``, ``runner_up``
        (segment number of the second-nearest centroid, or None).
    """
    name = names[segment]
    others = [i for i in range(len(distances)) if i != segment]
    runner = min(others, key=lambda i: distances[i]) if others else None
    if runner is None:
        headline, conf_text = name, "the only segment"
    elif confidence < BORDERLINE:
        headline = f"Borderline between {name} and {names[runner]}"
        conf_text = (f"almost as close to {names[runner]} as to {name} (confidence {confidence:.2f}); "
                     "a small change could move this customer")
    elif confidence < CLEAR:
        headline = f"{name}, leaning towards {names[runner]}"
        conf_text = f"closer to {name}, but {names[runner]} is not far (confidence {confidence:.2f})"
    else:
        headline = f"Clearly {name}"
        conf_text = f"much closer to {name} than to any other segment (confidence {confidence:.2f})"
    closer = 1.0 - typicality
    if typicality >= 0.5:
        typ_text = (f"a typical member: closer to the segment's centre than {typicality:.0%} of its other members "
                    "(the customer itself not counted)")
    elif typicality >= 0.1:
        typ_text = f"a less typical member: not closer to the centre than {closer:.0%} of its other members"
    else:
        typ_text = f"an unusual member: not closer to the centre than {closer:.0%} of its other members"
    return {"headline": headline, "confidence_text": conf_text, "typicality_text": typ_text,
            "runner_up": runner}


@dataclass
class Flip:
    """Where one feature, moved alone, changes the segment.

    Parameters
    ----------
    feature : str
    value : float
        The feature's current value.
    down, up : float or None
        Below / above the current value: for a whole-number feature, the first
        whole value in the other segment ("at most ``down``", "at least ``up``");
        otherwise the exact boundary (the segment changes just past it). None
        when the segment does not change within ``low``..``high``.
    down_segment, up_segment : int or None
        The segment at ``down`` / ``up``.
    low, high : float
        The plausible range searched.
    whole : bool
        True when ``down``/``up`` are whole values (inclusive), False for exact boundaries.
    """

    feature: str
    value: float
    down: float | None
    down_segment: int | None
    up: float | None
    up_segment: int | None
    low: float
    high: float
    whole: bool = False

    def to_dict(self) -> dict:
        """Plain dict (JSON-ready)."""
        return dict(self.__dict__)


def flip_points(values, mean, scale, centroids, features, ranges, integer=(), in_units: bool = False) -> list[Flip]:
    """For each feature, the nearest values above and below where the assigned segment changes.

    Parameters
    ----------
    values : sequence of float
        The customer's feature values (model order).
    mean, scale : sequence of float
        The model's scaler.
    centroids : sequence of sequence of float
        Centroids in scaled units (k rows).
    features : sequence of str
    ranges : dict
        Feature -> (low, high) plausible range in the feature's own units;
        changes outside it are not reported. The current value is always
        inside the searched range.
    integer : collection of str, optional
        Whole-number features: report the first whole value in another segment.
    in_units : bool, default False
        Answer in the data's own units: a feature clustered on a log scale (``Frequency_log``) is
        reported as its column (``Frequency``) with values in orders or money, and ``ranges`` and
        ``integer`` name that column (three orders, not a log value).

    Returns
    -------
    list of Flip
        One per feature, model order.
    """
    z = [(v - m) / s for v, m, s in zip(values, mean, scale)]
    k = len(centroids)
    dist2 = [sum((a - b) ** 2 for a, b in zip(z, c)) for c in centroids]
    current = min(range(k), key=dist2.__getitem__)
    out = []
    for j, feature in enumerate(features):
        name = schema.unit_field(feature) if in_units else feature
        # The search runs on the model's scale; limits and answers are converted at its edges.
        inward = (lambda v, f=feature: schema.from_units(f, v)) if in_units else (lambda v: v)
        outward = (lambda v, f=feature: schema.to_units(f, v)) if in_units else (lambda v: v)
        t0, m, s = z[j], mean[j], scale[j]
        shown = float(outward(values[j]))
        if in_units and schema.is_logged(feature):
            shown = round(shown, 9)  # 120, not the log round trip's 120.00000000000003
        low, high = ranges.get(name, (-math.inf, math.inf))
        low, high = min(low, shown), max(shown, high)
        # Rest of each squared distance: unchanged while feature j moves.
        rest = [dist2[c] - (t0 - centroids[c][j]) ** 2 for c in range(k)]
        whole = name in integer
        sides = []
        for direction, limit in ((-1, low), (+1, high)):
            edge = inward(limit) if math.isfinite(limit) else limit
            hit = _walk(current, t0, j, centroids, rest, direction, (edge - m) / s)
            if hit is None:
                sides.append((None, None))
                continue
            boundary = float(outward(m + s * hit[0]))
            if not whole:
                sides.append((boundary, hit[1]))
                continue
            # First whole value past the boundary, and whichever segment is nearest there (two
            # boundaries can fall between consecutive whole values).
            value = math.floor(boundary) + 1 if direction > 0 else math.ceil(boundary) - 1
            if (value - limit) * direction > 0:
                sides.append((None, None))
                continue
            tz = (float(inward(value)) - m) / s
            seg = min(range(k), key=lambda c: rest[c] + (tz - centroids[c][j]) ** 2)
            sides.append((float(value), seg) if seg != current else (None, None))
        (down, down_seg), (up, up_seg) = sides
        out.append(Flip(name, shown, down, down_seg, up, up_seg, float(low), float(high), whole))
    return out


def _walk(seg, t0, j, centroids, rest, direction, limit):
    """First crossing from ``t0`` in ``direction`` where another centroid becomes nearest."""
    cj = centroids[seg][j]
    best = None
    for b, cent in enumerate(centroids):
        bj = cent[j]
        # Only centroids lying further along this direction can overtake the current one.
        if b == seg or (bj - cj) * direction <= 0:
            continue
        # (t - cj)^2 + rest[seg] = (t - bj)^2 + rest[b]  ->  linear in t
        t = (rest[b] - rest[seg] + bj * bj - cj * cj) / (2.0 * (bj - cj))
        if (t - t0) * direction < 0:
            t = t0  # already tied at t0 (rounding): the flip is right here
        if best is None or (t - best[0]) * direction < 0 or (t == best[0] and (bj - best[2]) * direction > 0):
            best = (t, b, bj)
    if best is None or (best[0] - limit) * direction > 0:
        return None
    return best[0], best[1]


# ---------------------------------------------------------------------------- schema
def customer_schema(features) -> dict:
    """JSON Schema of one customer's fields for a model (what :func:`customer_values` accepts).

    Parameters
    ----------
    features : sequence of str

    Returns
    -------
    dict
        Properties for every known numeric field (with its range) and ``ID``;
        ``allOf`` requires, per feature, the feature or all of its raw columns.
    """
    properties = {
        name: {"type": "number", "minimum": low, "maximum": high,
               "description": schema.FEATURE_LABELS.get(name, name)}
        for name, (low, high) in FIELD_BOUNDS.items()
    }
    properties["Year_Birth"]["description"] = f"Year of birth (Age = {REFERENCE_YEAR} - Year_Birth)"
    properties["ID"] = {"description": "Optional; echoed back in the prediction",
                        "anyOf": [{"type": "integer", "minimum": 0, "maximum": _MAX_ID},
                                  {"type": "string", "maxLength": _MAX_ID_CHARS}]}
    required = []
    for feature in features:
        parts = DERIVATIONS.get(feature)
        if parts:
            required.append({"anyOf": [{"required": [feature]}, {"required": list(parts)}]})
        else:
            required.append({"required": [feature]})
    return {"type": "object", "properties": properties, "additionalProperties": True, "allOf": required}
