"""House rules that no other test would notice breaking: layering and ids in one place."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT, SAMPLE

WEB_PACKAGES = {"dash", "plotly", "flask", "flask_login", "flask_caching", "werkzeug", "dash_bootstrap_components"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_core_never_imports_web_packages():
    offenders = {str(p.relative_to(ROOT)): sorted(_imports(p) & WEB_PACKAGES)
                 for p in (ROOT / "core").rglob("*.py") if _imports(p) & WEB_PACKAGES}
    assert offenders == {}


def test_core_never_imports_dashboard():
    offenders = [str(p.relative_to(ROOT)) for p in (ROOT / "core").rglob("*.py") if "dashboard" in _imports(p)]
    assert offenders == []


def test_pages_use_id_constants_not_string_literals():
    """Callbacks in pages name components through dashboard.ids, never a literal string id."""
    offenders = []
    for path in (ROOT / "dashboard" / "pages").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
                    "Input", "Output", "State") and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str):
                offenders.append(f"{path.name}:{node.lineno} {node.args[0].value}")
    assert offenders == []


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    from dashboard.factory import create_app

    tmp = tmp_path_factory.mktemp("arch")
    return create_app(models_dir=tmp / "models", data_path=SAMPLE, cache_dir=tmp / "cache")


def _ids_in(layout) -> set:
    """Every string id in a layout, wherever a component sits (children or component-valued props)."""
    import json

    from dash._utils import to_json

    found = set()

    def walk(node):
        if isinstance(node, dict):
            props = node.get("props")
            if isinstance(props, dict) and isinstance(props.get("id"), str):
                found.add(props["id"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(to_json(layout)))
    return found


def test_every_callback_id_is_defined_in_ids_and_in_a_layout(app):
    """The validation layout (every page's layout + the shell) holds every id a callback uses."""
    from dashboard import ids

    client = app.server.test_client()
    assert client.get("/").status_code == 200  # the first request makes Dash build the validation layout
    layout = app.validation_layout
    assert layout is not None, "suppress_callback_exceptions must stay off so Dash validates callbacks"
    present = _ids_in(layout)
    assert {ids.DATA_RETRAIN_BTN, ids.PREDICT_RESULT if hasattr(ids, "PREDICT_RESULT") else ids.NAV} <= present
    constants = {v for k, v in vars(ids).items() if k.isupper() and isinstance(v, str)}
    missing_in_layout, not_constant = [], []
    for key, spec in app.callback_map.items():
        outputs = [{"id": part.rsplit(".", 1)[0]} for part in key.strip(".").split("...") if part]
        deps = outputs + list(spec.get("inputs", [])) + list(spec.get("state", []))
        for dep in deps:
            cid = dep["id"]
            if cid.startswith("{"):  # pattern-matching ids are dicts: checked by their type in the pages
                continue
            if cid.startswith("_pages") or cid.startswith("_dash"):
                continue
            if cid not in present:
                missing_in_layout.append(cid)
            if cid not in constants:
                not_constant.append(cid)
    assert missing_in_layout == []
    assert not_constant == []


def test_each_protected_output_is_written_by_one_callback_only(app):
    """The server guards state changes by the output only the changing callback writes (dashboard.auth).

    A second callback writing the same output (even with allow_duplicate) would be refused for
    viewers too, or could slip a change past the guard: each protected output has exactly one writer.
    """
    from dashboard.auth import PROTECTED_OUTPUTS

    writers = {output: [] for output in PROTECTED_OUTPUTS}
    for key in app.callback_map:
        for part in key.strip(".").split("..."):
            cid = part.rsplit(".", 1)[0]
            if cid in writers:
                writers[cid].append(key)
    assert {o: len(w) for o, w in writers.items()} == {o: 1 for o in PROTECTED_OUTPUTS}


def test_page_layouts_have_the_same_ids_whatever_the_role(app):
    """Dash checks callbacks against layouts built once, for whoever came first: a control a role may not
    use is rendered disabled, never left out, so every role's page has every id."""
    import dash
    import flask

    def ids_for(mode: str) -> dict:
        out = {}
        with app.server.test_request_context("/"):
            flask.g.segmentlens_mode = mode  # "open": a local admin; "read-only": nobody may change anything
            for page in dash.page_registry.values():
                out[page["path"]] = _ids_in(page["layout"]())
        return out

    used = set()  # ids callbacks read or write: the ones the browser checks against the layout
    for key, spec in app.callback_map.items():
        used |= {part.rsplit(".", 1)[0] for part in key.strip(".").split("...") if part}
        used |= {dep["id"] for dep in list(spec.get("inputs", [])) + list(spec.get("state", []))}
    admin, nobody = ids_for("open"), ids_for("read-only")
    assert {p: sorted((admin[p] ^ nobody[p]) & used) for p in admin if (admin[p] ^ nobody[p]) & used} == {}
