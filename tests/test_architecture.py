"""House rules that no other test would notice breaking: layering and ids in one place."""
from __future__ import annotations

import ast
import functools
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


# ------------------------------------------------------------------------------------------ the module graph
PRODUCT = ("core", "dashboard")


@functools.lru_cache(maxsize=1)
def _modules() -> dict[str, Path]:
    """Every product module by dotted name (packages by their __init__), plus app."""
    out = {"app": ROOT / "app.py"}
    for top in PRODUCT:
        for path in (ROOT / top).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _resolve(module: str, node: ast.ImportFrom) -> str:
    """The absolute module an ImportFrom names (relative imports resolved against ``module``)."""
    if node.level == 0:
        return node.module or ""
    is_package = _modules()[module].name == "__init__.py"
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


@functools.lru_cache(maxsize=1)
def _edges() -> dict[str, set[str]]:
    """Product module -> product modules it imports, anywhere in the file (function-level imports count)."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(name, node)
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            for target in targets:
                while target and target not in modules:
                    target = target.rpartition(".")[0]
                if target and target != name and not name.startswith(target + "."):
                    found.add(target)
        graph[name] = found
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    import sys

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 5000))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(out)


def test_no_import_circles_anywhere_function_level_imports_included():
    assert _cycles(_edges()) == []


def test_the_circle_check_finds_a_function_level_circle(tmp_path):
    """The checker itself: a circle hidden in a function body is still a circle."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]
    tree = ast.parse("def f():\n    from .data import mapping_arg\n")
    node = next(n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom))
    assert _resolve("core.cli.commands", node) == "core.cli.data"


def test_no_module_imports_another_modules_private_names():
    """``from x import _name`` and ``x._name`` on an imported product module are both private reaches."""
    modules = _modules()
    offenders = []
    for name, path in modules.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                base = _resolve(name, node)
                for a in node.names:
                    full = f"{base}.{a.name}"
                    if full in modules:
                        aliases[a.asname or a.name] = full
                    elif a.name.startswith("_") and not a.name.startswith("__") and base.split(".")[0] in PRODUCT:
                        offenders.append(f"{name}: from {base} import {a.name}")
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name in modules:
                        aliases[a.asname or a.name.split(".")[0]] = a.name
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id in aliases and aliases[node.value.id] != name \
                    and node.attr.startswith("_") and not node.attr.startswith("__"):
                offenders.append(f"{name}: {aliases[node.value.id]}.{node.attr}")
    assert sorted(set(offenders)) == []


def _product_imports(name: str) -> set[str]:
    return _edges()[name]


def test_figures_import_neither_dash_components_services_nor_pages():
    modules = _modules()
    offenders = {}
    for name, path in modules.items():
        if not name.startswith("dashboard.figures"):
            continue
        bad = {m for m in _product_imports(name) if m.startswith(("dashboard.services", "dashboard.pages"))
               or m == "dashboard.components"}
        bad |= {m for m in _imports(path) if m in ("dash", "dash_bootstrap_components")}
        if bad:
            offenders[name] = sorted(bad)
    assert offenders == {}


def test_services_import_no_pages():
    offenders = {name: sorted(m for m in _product_imports(name) if m.startswith("dashboard.pages"))
                 for name in _modules() if name.startswith("dashboard.services")}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_core_imports_no_web_packages_anywhere_in_its_files():
    """As test_core_never_imports_web_packages, with sub-modules (``plotly.graph_objects``) and dashboard."""
    offenders = {}
    for name, path in _modules().items():
        if name.startswith("core"):
            bad = (_imports(path) & (WEB_PACKAGES | {"dashboard"})) | {
                m for m in _product_imports(name) if m.startswith("dashboard")}
            if bad:
                offenders[name] = sorted(bad)
    assert offenders == {}


def test_core_is_a_few_packages_that_say_what_they_hold():
    """core/'s top level holds packages only (plus the package's own __init__ and __main__), each documented."""
    loose = sorted(p.name for p in (ROOT / "core").glob("*.py") if p.name not in {"__init__.py", "__main__.py"})
    assert loose == []
    packages = sorted(p.parent.name for p in (ROOT / "core").glob("*/__init__.py"))
    assert {"reading", "fitting", "versions", "insight", "cli", "engines"} <= set(packages)
    undocumented = [name for name in packages
                    if not ast.get_docstring(ast.parse((ROOT / "core" / name / "__init__.py").read_text()))]
    assert undocumented == []
