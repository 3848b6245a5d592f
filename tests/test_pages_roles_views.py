"""Overview, profiles, predict and data pages without a browser: what they render for a role that may not act,
the data page's confirmations and k controls, the predict page's start, the profiles' products to feature."""
from __future__ import annotations

import json

import pytest

from dashboard import ids
from tests.conftest import SAMPLE

REASON = "Only admins can do this; you are signed in as viewer."


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from dashboard.factory import create_app

    tmp = tmp_path_factory.mktemp("pages")
    return create_app(models_dir=tmp / "models", data_path=SAMPLE, cache_dir=tmp / "cache")


@pytest.fixture(scope="module")
def pages(app):
    """The page modules as Dash imported them (``pages.<name>``): importing ``dashboard.pages.<name>`` again would
    register a second page without a layout in the process-wide ``dash.page_registry``."""
    import importlib

    return {name: importlib.import_module(f"pages.{name}")
            for name in ("data", "predict", "profiles", "overview")}


def _find(layout, wanted_id):
    """The component with ``wanted_id`` in a layout tree (None when absent)."""
    def walk(node):
        if node is None or isinstance(node, (str, int, float)):
            return None
        if isinstance(node, (list, tuple)):
            for child in node:
                hit = walk(child)
                if hit is not None:
                    return hit
            return None
        if getattr(node, "id", None) == wanted_id:
            return node
        return walk(getattr(node, "children", None))
    return walk(layout)


def _json(layout) -> str:
    """The layout as JSON text with characters as typed (orjson and json escape non-ASCII differently)."""
    import json

    from dash._utils import to_json

    return json.dumps(json.loads(to_json(layout)), ensure_ascii=False, separators=(",", ":"))


def _deny(monkeypatch, module, denied: set[str]):
    """Make the page believe the caller may not do ``denied`` actions."""
    monkeypatch.setattr(module, "may", lambda action: (False, REASON) if action in denied else (True, None))


# ---------------------------------------------------------------- data page
def test_data_page_viewer_sees_controls_disabled_with_the_reason(app, pages, monkeypatch):
    data = pages["data"]
    _deny(monkeypatch, data, {"upload", "retrain", "activate", "rollback", "delete"})
    with app.server.test_request_context("/data"):
        layout = data.layout()
    assert _find(layout, ids.DATA_UPLOAD).disabled is True
    assert _find(layout, ids.DATA_ROLLBACK_BTN).disabled is True
    # The confirmation wrapper stays (every role's layout has every callback id) around a disabled button.
    assert _find(layout, ids.DATA_ROLLBACK_CONFIRM).children.disabled is True
    text = _json(layout)
    assert REASON in text  # the reason is shown as text, not only in a tooltip
    assert f'"title":"{REASON}"' in text
    assert _find(layout, ids.DATA_PERMISSION_NOTE).children == REASON


def test_data_page_open_mode_everything_enabled_with_confirmations(app, pages, monkeypatch):
    data = pages["data"]
    monkeypatch.setattr(data, "may", lambda action: (True, None))
    with app.server.test_request_context("/data"):
        layout = data.layout()
    assert not _find(layout, ids.DATA_UPLOAD).disabled
    confirm = _find(layout, ids.DATA_ROLLBACK_CONFIRM)
    assert confirm is not None and "Roll back" in confirm.message
    assert REASON not in _json(layout) and _find(layout, ids.DATA_PERMISSION_NOTE) is None
    # k starts at the active model's; the upload survives navigation in the tab's session.
    from core.versions.registry import Registry

    meta = Registry(app.server.extensions["segmentlens"].registry.root).metadata()
    assert _find(layout, ids.DATA_K).value == meta["k"]
    assert _find(layout, ids.DATA_UPLOAD_STORE).storage_type == "session"
    assert _find(layout, data.MODEL_CHANGED).data == meta["version"]


def _rows():
    base = {"created": "2026-12-01T10:00:00", "source": "a.tsv", "fingerprint": "f", "rows": 10, "k": 3,
            "features": ["Age"], "silhouette": 0.2, "stability": 0.8, "serving": False, "broken": False}
    return [dict(base, version="v0002", active=False), dict(base, version="v0001", active=True)]


def test_versions_view_asks_before_activating_and_deleting(pages):
    data = pages["data"]
    text = _json(data.versions_view(_rows()))
    # An inactive version: Activate and Delete both sit behind a confirmation naming the version.
    assert "Activate model version v0002?" in text and "Delete model version v0002?" in text
    assert '"type":"ConfirmDialogProvider"' in text
    assert "Activate model version v0001?" not in text  # the active one cannot be activated again


def test_versions_view_for_a_viewer(pages):
    data = pages["data"]
    view = data.versions_view(_rows(), {"activate": (False, REASON), "delete": (False, REASON)})
    text = _json(view)
    assert "ConfirmDialogProvider" not in text  # nothing to confirm: the buttons are disabled
    assert text.count(REASON) == 2  # on Activate and Delete of v0002; v0001's are disabled for another reason
    assert "The active version cannot be deleted" in text


def _comparison(**extra) -> dict:
    return {"reference_version": "v0001", "method": "centroids", "ari_common": 0.93, "n_common": 2212,
            "ari_rescored": 0.9, "drift": None, "drift_note": "no data", "k": {"candidate": 2, "reference": 2},
            "n_candidate": 2212, "n_reference": 2212, "segments": [
                {"segment": i, "name": f"S{i}", "matched": i, "matched_name": f"S{i}", "reference_share": 0.5,
                 "share": 0.5, "share_change": 0.0, "overlap": 1.0, "renamed": False, "persona_changed": False,
                 "generated_name": f"S{i}"} for i in range(2)], **extra}


def test_comparison_explains_agreement_on_common_customers(pages):
    data = pages["data"]
    view = data.comparison_view("v0002", _comparison())
    assert "adjusted Rand index" in _find(view, ids.DATA_COMMON_NOTE).children  # the static sentence
    note = "Agreement on the 2,212 customers present in both files, matched by ID and birth year."
    view = data.comparison_view("v0002", _comparison(common_note=note))
    assert _find(view, ids.DATA_COMMON_NOTE).children == note  # what the services say, when they say it
    assert "Activate model version v0002?" in _json(view)
    denied = _json(data.comparison_view("v0002", _comparison(), (False, REASON)))
    assert "ConfirmDialogProvider" not in denied and REASON in denied


def test_recommended_k_button(pages):
    data = pages["data"]
    assert data.offer_recommended_k(3, 6) == ("Use the recommended k (3)", False)
    assert data.offer_recommended_k(3, "3") == ("Use the recommended k (3)", True)  # already chosen
    assert data.offer_recommended_k(None, 6) == ("Use the recommended k", True)
    assert data.use_recommended_k(1, 4) == 4


def test_upload_store_renders_report_again(app, pages, monkeypatch):
    """What the session store holds is enough to draw the report again on coming back."""
    data = pages["data"]
    monkeypatch.setattr(data, "may", lambda action: (True, None))
    with app.server.test_request_context("/data"):
        stored = data.accepted_upload("data:text/tab-separated-values;base64," + _b64(SAMPLE), "mine.tsv")
        assert set(stored) == {"token", "name", "report"} and stored["name"] == "mine.tsv"
        view, disabled = data.show_upload(json.loads(json.dumps(stored)))  # as the browser gives it back
        assert disabled is False and '"mine.tsv"' in _json(view) and ": 2,240 rows read" in _json(view)
        refused = data.accepted_upload("data:text/csv;base64," + _b64_bytes(b"\x89PNG\r\n" + bytes(range(256))),
                                       "photo.csv")
        assert set(refused) == {"error", "active"} and "photo.csv" in refused["error"]
        error_view, disabled = data.show_upload(refused)
        assert disabled is True and "the active model stays" in _json(error_view)


def _b64(path) -> str:
    import base64

    return base64.b64encode(path.read_bytes()).decode()


def _b64_bytes(raw: bytes) -> str:
    import base64

    return base64.b64encode(raw).decode()


# ---------------------------------------------------------------- predict page
def test_predict_opens_on_the_largest_segments_typical_member(app, pages):
    predict = pages["predict"]
    services = app.server.extensions["segmentlens"]
    with app.server.test_request_context("/predict"):
        a = services.analysis()
        largest = predict.largest_segment(a.sizes)
        assert a.sizes.loc[largest, "n"] == a.sizes["n"].max()
        layout = predict.layout()
        member = services.typical_member(largest)
        fields = {f["name"]: f for f in services.predict_form()["features"]}
        r = services.what_if({f: str(member[f]) for f in fields})
        median = services.what_if({f: str(spec["median"]) for f, spec in fields.items()})
    assert r["segment"] == largest  # it really lands in the largest segment
    assert r["confidence"] > median["confidence"]  # and more clearly than the all-medians customer
    assert _find(layout, ids.PREDICT_PREFILL_SEGMENT).value == largest
    message = _find(layout, ids.PREDICT_PREFILL_MESSAGE).children
    assert f"customer {member['ID']}" in message and "largest segment" in message
    age = next(c for c in _all(layout) if getattr(c, "id", None) == {"type": ids.PREDICT_FIELD, "field": "Age"})
    assert age.value == str(member["Age"])
    placeholder = _find(layout, ids.PREDICT_PREFILL_CUSTOMER).placeholder
    assert int(placeholder.split("e.g. ")[1]) in set(a.frame["ID"].astype(int))


def _all(layout):
    out = []

    def walk(node):
        if isinstance(node, (list, tuple)):
            for child in node:
                walk(child)
        elif hasattr(node, "to_plotly_json"):
            out.append(node)
            walk(getattr(node, "children", None))
    walk(layout)
    return out


# ---------------------------------------------------------------- profiles page
def test_products_to_feature_are_about_the_selected_segment(app, pages):
    profiles = pages["profiles"]
    services = app.server.extensions["segmentlens"]
    from core.insight.profiles import LIFT_THRESHOLD

    with app.server.test_request_context("/profiles"):
        a = services.analysis()
        names = services.segment_names()
        for seg in range(a.k):
            rows = profiles.segment_products(a.lift, a.product_mix, seg, LIFT_THRESHOLD)
            assert [r["lift"] for r in rows] == sorted(a.lift.loc[seg].tolist(), reverse=True)
            assert [r["feature"] for r in rows] == [v >= LIFT_THRESHOLD for v in sorted(a.lift.loc[seg], reverse=True)]
            block = profiles._recommendations(a, names, seg)
            head = " ".join(_json(c) for c in block.children[:2])
            if any(r["feature"] for r in rows):
                assert f"Feature these to {names[seg]}" in head
                for r in rows:
                    assert (f"{r['lift']:.1f}×" in head) == r["feature"]
            else:
                assert f"No product category stands out for {names[seg]}" in head
            # Other segments' recommendations are folded below, never first.
            assert all(f"{names[other]} spends" not in head for other in range(a.k) if other != seg)


def test_profiles_rename_disabled_for_a_viewer(app, pages, monkeypatch):
    profiles = pages["profiles"]
    _deny(monkeypatch, profiles, {"rename"})
    with app.server.test_request_context("/profiles"):
        layout = profiles.layout()
    assert _find(layout, ids.PROFILES_RENAME_INPUT).disabled is True
    assert _find(layout, ids.PROFILES_RENAME_BTN).disabled is True
    assert _find(layout, ids.PROFILES_RENAME_PERMISSION).children == REASON


def test_segment_facts_show_counts_as_counts(pages):
    import pandas as pd

    profiles = pages["profiles"]
    frame = pd.DataFrame({"segment": [0, 0, 0, 1], "Age": [40, 51, 60, 30], "Income": [50_000.4, 61_000.6, 70_000, 1],
                          "Total_Purchases": [3, 4, 8, 1], "Total_Children": [0, 0, 1, 2],
                          "Campaigns_Accepted": [0, 0, 0, 1], "Recency": [10, 12, 13, 1]})
    facts = dict(profiles.segment_facts(frame, 0))
    assert facts == {"Typical age": "51", "Typical income": "61,001", "Purchases, 2 years": "4",
                     "Days since last purchase": "12", "Have children at home": "33%", "Accepted a campaign": "0%"}
    assert profiles.segment_facts(frame, 5) == []
