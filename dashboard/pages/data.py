"""Data & models (/data): upload a customer file, retrain with progress, compare, activate / roll back, export."""
import sys
import time
import traceback

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import ALL, Input, Output, State, callback, ctx, dcc, html
from dash.exceptions import PreventUpdate

from core.access.accounts import Forbidden
from core.insight.drift import PSI_MAJOR, PSI_MODERATE
from core.reading.loading import DataFileError
from core.versions.registry import RegistryError
from core.reading.schema import FEATURE_LABELS, MODEL_FEATURES
from core.versions.seed_export import PICKLE_WARNING
from core.versions.training import STEP_LABELS, STEPS
from dashboard import ids
from dashboard.components import (
    as_actor, empty_state, graph_card, kpi_card, may, page_header, permission_note, scroll_box, segment_badge, table,
)
from dashboard.figures.data import share_comparison_figure
from dashboard.figures.stability import psi_figure
from dashboard.auth import job_caller
from dashboard.services import Services, get_services

dash.register_page(__name__, path="/data", name="Data & models", order=7, title="SegmentLens · Data & models")

K_MIN, K_MAX = 2, 15
_DELIMITERS = {"\t": "tab", ",": "comma", ";": "semicolon"}
_RECOMMENDATION_STYLE = {"keep": "success", "watch": "warning", "retrain": "danger"}
# Shown until the services say how the customers of the two files were matched (comparison["common_note"]).
_COMMON_NOTE = ("Agreement on common customers: of the customers present in both files, how often the two models "
                "put the same pairs of customers together (adjusted Rand index: 1 = the same grouping, 0 = no better "
                "than chance).")
# Pattern-matching id, so the header's status callback can listen to it on every page (ALL matches nothing
# outside /data) and show a newly activated version at once.
MODEL_CHANGED = {"type": ids.MODEL_CHANGED, "scope": "data"}


def _guarded(control, reason: str | None):
    """A control wrapped so its disabled reason shows on hover (a disabled button itself gets no events)."""
    return html.Span(control, title=reason, className="d-inline-block") if reason else control


# ---------------------------------------------------------------- views (pure: data in, components out)
def _when(created) -> str:
    """'2026-03-01 12:00' from an ISO timestamp."""
    text = str(created or "—")
    return text[:16].replace("T", " ") if len(text) >= 16 else text


def upload_view(report: dict) -> html.Div:
    """The validation and cleaning report of an accepted upload."""
    load, cleaning = report["load"], report["cleaning"]
    dropped = cleaning["rows_read"] - cleaning["rows_used"]
    detected = [
        ("Delimiter", _DELIMITERS.get(load["delimiter"], repr(load["delimiter"]))),
        ("Encoding", load["encoding"] + (" with byte-order mark" if load["bom"] else "")),
        ("Line endings", load["line_endings"]),
        ("Dates (Dt_Customer)", load["date_note"] or load["date_format"] or "none"),
        ("Income", "written as currency / with digit grouping" if load["currency_income"] else "plain numbers"),
        ("Columns recognised", f"{len(load['column_mapping'])}"),
        ("Columns ignored", ", ".join(load["extra_columns"]) or "none"),
        ("Optional columns missing", ", ".join(load["missing_optional"]) or "none"),
        ("Unreadable cells", ", ".join(f"{c}: {n}" for c, n in load["unreadable"].items()) or "none"),
    ]
    renamed = {h: c for h, c in load["column_mapping"].items() if h != c}
    rules = [{"rule": r["name"].replace("_", " "), "action": r["action"], "rows": r["count"], "why": r["description"]}
             for r in cleaning["rules"] if r["count"]]
    preview = pd.DataFrame(report["preview"])
    return html.Div([
        dbc.Alert([html.Strong(report["name"]), f": {cleaning['rows_read']:,} rows read, {cleaning['rows_used']:,} "
                   f"used ({dropped:,} dropped). Nothing has changed yet: choose features and k below and retrain; "
                   "the new model is activated only when you say so."], color="success", className="mb-2"),
        dbc.Row([
            dbc.Col([html.H4("Detected", className="h6"),
                     html.Dl(sum(([html.Dt(k, className="col-sm-5 small text-muted"),
                                   html.Dd(v, className="col-sm-7 small mb-1")] for k, v in detected), []),
                             className="row mb-1"),
                     html.Details([html.Summary(f"Column mapping ({len(renamed)} header(s) read under another name)",
                                                className="small"),
                                   table(pd.DataFrame({"header in the file": list(load["column_mapping"]),
                                                       "read as": list(load["column_mapping"].values())}),
                                         index=False)])], lg=5),
            dbc.Col([html.H4("Cleaning", className="h6"),
                     (table(pd.DataFrame(rules), index=False) if rules
                      else html.P("No row needed cleaning.", className="small")),
                     html.H4("Preview (first rows, non-personal columns)", className="h6 mt-3"),
                     table(preview, index=False, float_format="{:,.0f}")], lg=7),
        ], className="g-3"),
        mapping_view(report) if report.get("mapping") else None,
    ])


_KIND_WORDS = {"customers": "a customer table (one row per customer)",
               "transactions": "a transaction log (several rows per customer, each with a date and an amount)"}


def mapping_view(report: dict) -> html.Div:
    """The suggested column mapping of a non-canonical file, to confirm or change before retraining."""
    mapping, roles = report["mapping"], report["roles"]
    options = [{"label": f"{role.replace('_', ' ')}: {what}", "value": role} for role, what in roles.items()]
    rows = [html.Tr([html.Td(html.Code(str(column))),
                     html.Td(dcc.Dropdown(id={"type": ids.DATA_MAP_ROLE, "column": str(column)}, options=options,
                                          value=role, clearable=False, style={"minWidth": "22rem"}))])
            for column, role in mapping["columns"].items()]
    summary = report.get("summary") or {}
    facts = []
    if summary.get("transactions") is not None:
        facts.append(f"{summary['transactions']:,} transactions of {summary['customers']:,} customers, "
                     f"{summary['first_date']} to {summary['latest_date']}; {summary['nonpositive']:,} rows with an "
                     "amount of zero or less are kept (returns, free items).")
    if report.get("transforms"):
        facts.append("Skewed money columns are clustered on a log scale: " + ", ".join(report["transforms"]) + ".")
    return html.Div([
        html.H4("Column mapping: confirm or change", className="h6 mt-3"),
        html.P(["Read as ", html.Strong(_KIND_WORDS.get(mapping["input"], mapping["input"])),
                ". Each column's role was suggested from its name and values. Retrain uses the mapping shown; "
                "change a role and press Apply to check the file again with it."], className="small mb-1"),
        dbc.Table([html.Thead(html.Tr([html.Th("Column in the file"), html.Th("Role")])), html.Tbody(rows)],
                  size="sm", className="mb-2"),
        html.Ul([html.Li(note, className="small") for note in mapping.get("notes") or []] +
                [html.Li(fact, className="small") for fact in facts], className="mb-2"),
    ])


def mapping_controls() -> html.Div:
    """Kind of file, Apply and the mapping's message: shown under the report of a mapped upload."""
    return html.Div([
        dbc.Row([
            dbc.Col([dbc.Label("Kind of file", html_for=ids.DATA_MAP_KIND, className="small mb-1"),
                     dcc.Dropdown(id=ids.DATA_MAP_KIND, clearable=False, value="customers",
                                  options=[{"label": "customer table", "value": "customers"},
                                           {"label": "transaction log", "value": "transactions"}])], md=4),
            dbc.Col(dbc.Button("Apply mapping", id=ids.DATA_MAP_APPLY, color="secondary", size="sm"),
                    className="d-flex align-items-end", md=3),
        ], className="g-2 mb-2"),
        html.Div(id=ids.DATA_MAP_MSG, **{"aria-live": "polite"}),
    ], id=ids.DATA_MAP_BOX, style={"display": "none"})


def rfm_view(rfm: dict | None, names: list) -> html.Div | None:
    """How the k-means segments relate to the standard RFM groups: customers per segment and group."""
    if not rfm or not rfm.get("crosstab"):
        return None
    table_ = rfm["crosstab"]
    frame = pd.DataFrame([[f"{s} · {names[int(s)] if int(s) < len(names) else ''}", *values]
                          for s, values in table_["rows"].items()], columns=["Segment", *table_["columns"]])
    return html.Div([html.H4("Segments and RFM groups (customers in each)", className="h6 mt-2"),
                     html.P("RFM groups come from quintile scores of recency, frequency and spend; the segments from "
                            "k-means on the chosen features.", className="small text-muted mb-1"),
                     html.Div(table(frame, index=False), id=ids.DATA_RFM_TABLE)])


def upload_error_view(message: str, active: str | None) -> dbc.Alert:
    """A file that cannot be used: the loader's message, and the reassurance that nothing changed."""
    return dbc.Alert([html.Strong("This file cannot be used: "), message,
                      html.Div(f"Nothing was changed{f': the active model stays {active}' if active else ''}.",
                               className="small mt-1")], color="danger", className="mb-0")


def recommendation_view(summary: dict | None, source: str) -> html.Div:
    """Which k the sweep recommends on the uploaded data, with its reasons."""
    if not summary:
        return html.Span("Upload a file to see which k its data supports.")
    if "skipped" in summary:
        return html.Span(f"{source} has {summary['skipped']:,} customers: the comparison of k runs during "
                         "retraining (step 'sweep') and is shown with the candidate.")
    return html.Div([html.Strong(f"Recommended for {source}: k={summary['recommended_k']}. "),
                     html.Span(summary["reason"], className="small")])


def retrain_message(result: dict | None):
    """Outcome of a retrain: the new (inactive) version, or why nothing was saved."""
    if not result:
        return None
    if result.get("error"):
        return dbc.Alert([html.Strong("Retraining did not finish: "), result["error"],
                          html.Div("No new version was saved; the active model is unchanged.", className="small")],
                         color="danger", className="mb-0")
    steps = " → ".join(result.get("steps") or [])
    extra = []
    if result.get("transforms"):
        extra.append(html.Div("Clustered on a log scale (skewed money columns): " + ", ".join(result["transforms"]),
                              className="small"))
    extra.append(rfm_view(result.get("rfm"), result.get("segment_names") or []))
    return dbc.Alert([html.Strong(f"Saved candidate {result['version']}"),
                      f" (k={result['k']}, {result['rows_used']:,} customers of {result['name']}). It is not active: "
                      "compare it with the active model below, then activate it if it serves you better.",
                      html.Div(f"Steps: {steps} ({result.get('seconds', 0):.1f} s)", className="small text-muted"),
                      *[e for e in extra if e is not None]],
                     color="success", className="mb-0")


def versions_view(rows: list[dict], allowed: dict | None = None) -> html.Div:
    """The versions table with Activate / Compare / Delete per row (the active row cannot be deleted).

    ``allowed`` maps "activate" and "delete" to (may, reason); a control the caller may not use is disabled
    with the reason on hover.
    """
    if not rows:
        return empty_state("No model version yet.")
    allowed = allowed or {}
    can_activate, why_activate = allowed.get("activate", (True, None))
    can_delete, why_delete = allowed.get("delete", (True, None))
    head = html.Thead(html.Tr([html.Th(h) for h in ("Version", "Created", "Data (fingerprint)", "Rows", "k",
                                                    "Features", "Silhouette", "Stability", "Active")]
                              # The buttons' column is named for screen readers (axe: empty table header).
                              + [html.Th(html.Span("Actions", className="visually-hidden"))]))
    body = []
    for r in rows:
        v = r["version"]
        badges = []
        if r["active"]:
            badges.append(dbc.Badge("active", color="primary", className="ms-1"))
        if r["serving"]:
            badges.append(dbc.Badge("shown", color="warning", text_color="dark", className="ms-1"))
        if r["broken"]:
            badges.append(dbc.Badge("fails checksum", color="danger", className="ms-1"))
        features = r["features"]
        labels = [FEATURE_LABELS.get(f, f) for f in features]
        short = ", ".join(labels[:2]) + (f" +{len(labels) - 2}" if len(labels) > 2 else "")
        if r["active"]:
            delete = html.Span(dbc.Button("Delete", size="sm", color="danger", outline=True, disabled=True,
                                          className="btn-delete"),
                               title="The active version cannot be deleted: activate another one first.")
        elif not can_delete:
            delete = _guarded(dbc.Button("Delete", size="sm", color="danger", outline=True, disabled=True,
                                         className="btn-delete"), why_delete)
        else:
            delete = dcc.ConfirmDialogProvider(
                dbc.Button("Delete", size="sm", color="danger", outline=True, className="btn-delete"),
                id={"type": ids.DATA_DELETE, "version": v},
                message=f"Delete model version {v}? This cannot be undone.")
        activate = activate_button(v, "table", size="sm", disabled=r["active"], allowed=(can_activate, why_activate),
                                   label="Activate", class_name="me-1")
        actions = html.Div([
            activate,
            dbc.Button("Compare", id={"type": ids.DATA_COMPARE, "version": v}, size="sm", color="secondary",
                       disabled=r["active"], className="me-1 btn-compare"),
            delete,
        ], className="d-flex flex-nowrap")
        body.append(html.Tr([
            html.Td([html.Span(v, className="fw-semibold"), *badges]), html.Td(_when(r["created"])),
            html.Td([html.Div(r["source"]), html.Div(r["fingerprint"], className="small text-muted font-monospace")]),
            html.Td(f"{r['rows']:,}" if isinstance(r["rows"], int) else "—"), html.Td(r["k"] or "—"),
            html.Td(short, title=", ".join(labels)),
            html.Td(f"{r['silhouette']:.3f}" if isinstance(r["silhouette"], (int, float)) else "—"),
            html.Td(f"{r['stability']:.2f}" if isinstance(r["stability"], (int, float)) else "—",
                    title="mean bootstrap Jaccard over segments (0.75+ stable)"),
            html.Td("yes" if r["active"] else "no"), html.Td(actions),
        ], className="fw-semibold" if r["active"] else None, **{"data-version": v}))
    return scroll_box(dbc.Table([head, html.Tbody(body)], hover=True, size="sm", className="mb-0 align-middle"),
                      "Model versions")


def activate_button(version: str, where: str, *, size: str | None = None, disabled: bool = False,
                    allowed: tuple = (True, None), label: str | None = None, class_name: str = ""):
    """Activate ``version``, after a confirmation that says what changes (every page and the API switch)."""
    can, why = allowed
    button = dbc.Button(label or f"Activate {version}", size=size, color="primary",
                        disabled=disabled or not can, className=f"btn-activate {class_name}".strip())
    if disabled or not can:
        return _guarded(button, None if disabled else why)
    return dcc.ConfirmDialogProvider(
        button, id={"type": ids.DATA_ACTIVATE, "version": version, "where": where},
        message=f"Activate model version {version}? Every page and the API will use it at once "
                "(you can roll back afterwards).")


def _pp(value) -> str:
    return "—" if value is None else f"{value * 100:+.1f} pp"


def _suggested(version: str, r: dict, allowed: tuple):
    """The persona the new data suggests for a segment, with a button to adopt it as the segment's name."""
    if not r["persona_changed"]:
        return "same"
    if r["generated_name"] == r["name"]:
        return [r["generated_name"], " (adopted)"]
    ok, why = allowed
    return [r["generated_name"], " ", dbc.Button(
        "Adopt the suggested name", id={"type": ids.DATA_ADOPT_NAMES_BTN, "version": version, "segment": r["segment"]},
        size="sm", color="link", className="p-0 align-baseline", disabled=not ok, title=why or None)]


def comparison_view(version: str, comp: dict, allowed: tuple = (True, None)) -> html.Div:
    """A candidate against the active model: matching, agreement, share changes, names, drift."""
    if comp.get("same"):
        return dbc.Alert(f"{version} is the active model: nothing to compare it with.", color="info", className="mb-0")
    active = comp["reference_version"]
    how = ("centroids (Hungarian matching in the active model's units)" if comp["method"] == "centroids"
           else "shared customers (Hungarian matching; the features differ)")
    ari = comp["ari_common"]
    kpis = dbc.Row([
        dbc.Col(kpi_card("Agreement on common customers", "n/a" if ari is None else f"{ari:.2f}",
                         f"adjusted Rand index, {comp['n_common']:,} customers in both files",
                         card_id=ids.DATA_AGREEMENT_KPI), md=4),
        dbc.Col(kpi_card("Agreement on the new customers", f"{comp['ari_rescored']:.2f}",
                         "active model vs candidate on the new file"), md=4),
        dbc.Col(kpi_card("Drift of the new data", (comp["drift"] or {}).get("recommendation", "n/a").upper(),
                         "keep / watch / retrain (PSI per feature)"), md=4),
    ], className="g-3 mb-3")
    rows = []
    for r in comp["segments"]:
        if r["matched"] is None:
            naming = "new segment"
        elif r["renamed"]:
            naming = f"renamed from {r['matched_name']}"
        else:
            naming = "name kept"
        rows.append(html.Tr([
            html.Td(segment_badge(r["segment"], f"{r['segment']} · {r['name']}")),
            html.Td("—" if r["matched"] is None else f"{r['matched']} · {r['matched_name']}"),
            html.Td("—" if r["reference_share"] is None else f"{r['reference_share']:.1%}"),
            html.Td(f"{r['share']:.1%}"), html.Td(_pp(r["share_change"])),
            html.Td("—" if r["overlap"] is None else f"{r['overlap']:.0%}"),
            html.Td(naming), html.Td(_suggested(version, r, allowed), className="small"),
        ]))
    head = html.Thead(html.Tr([html.Th(h) for h in (
        "Candidate segment", f"Matches active ({active})", "Active share", "Candidate share", "Change",
        "Same customers", "Name", "Persona the new data suggests")]))
    unmatched = comp.get("unmatched_reference") or []
    drift = comp.get("drift")
    notes = []
    if comp.get("stale"):
        notes.append(dbc.Alert(f"Compared with {active} when it was trained; its training data is no longer available "
                               "to compare again.", color="secondary", className="small"))
    if unmatched:
        notes.append(dbc.Alert("Active segments without a counterpart in the candidate: " + ", ".join(
            f"{u['segment']} · {u['name']} ({u['share']:.0%})" for u in unmatched), color="warning", className="small"))
    drift_part = (dbc.Alert(f"Drift report not available: {comp.get('drift_note') or 'no data'}.", color="secondary")
                  if not drift else html.Div([
                      dbc.Alert([html.Strong(f"{drift['recommendation'].capitalize()}: "), drift["reason"]],
                                color=_RECOMMENDATION_STYLE.get(drift["recommendation"], "secondary"),
                                id=ids.DATA_DRIFT),
                      graph_card(f"Feature drift of the new data (PSI; {PSI_MODERATE} moderate, {PSI_MAJOR} "
                                 "significant)", ids.DATA_PSI_GRAPH, height=300,
                                 figure=psi_figure(drift["features"], FEATURE_LABELS))]))
    return html.Div([
        html.P([html.Strong(f"Candidate {version}"),
                f" (k={comp['k']['candidate']}, {comp['n_candidate']:,} customers) "
                f"against the active {active} (k={comp['k']['reference']}, {comp['n_reference']:,} customers). "
                f"Segments matched by {how}; matched segments keep the active names and colours."], className="mb-2"),
        kpis,
        html.P(comp.get("common_note") or _COMMON_NOTE, className="small text-muted", id=ids.DATA_COMMON_NOTE),
        *notes,
        scroll_box(dbc.Table([head, html.Tbody(rows)], size="sm", hover=True, className="mb-3",
                             id=ids.DATA_COMPARISON_TABLE), "Segments, candidate against active model"),
        dbc.Row([
            dbc.Col(graph_card("Share of customers per segment", ids.DATA_SHARE_GRAPH, height=340,
                               figure=share_comparison_figure(comp["segments"], active, version)), lg=6),
            dbc.Col(drift_part, lg=6),
        ]),
        activate_button(version, "compare", allowed=allowed),
        permission_note(allowed[1]),
    ])


# ---------------------------------------------------------------- layout
def layout(**_query):
    """The data & models page."""
    services = get_services()
    try:
        warning = services.model_warning()
        _, meta = services.model()
    except RegistryError as exc:
        warning, meta = str(exc), {}
    limit_mb = services.upload_limit() / 1024 / 1024
    sweep = meta.get("sweep")
    can = {action: may(action) for action in ("upload", "retrain", "activate", "rollback", "delete")}
    can_upload, why_upload = can["upload"]
    can_rollback, why_rollback = can["rollback"]
    current_k = int(meta.get("k") or 6)
    # The active version's own features (a log's Frequency_log is offered as "Orders"); the canonical ones
    # for a version of the canonical file, whose other features may be chosen too.
    active_features = list(meta.get("features") or [])
    offered = MODEL_FEATURES if set(active_features) <= set(MODEL_FEATURES) else active_features
    recommended = sweep.get("recommended_k") if sweep else None
    upload = dbc.Card([
        dbc.CardHeader(html.Span("1 · Upload a customer file", className="fw-semibold")),
        dbc.CardBody([
            _guarded(dcc.Upload(
                id=ids.DATA_UPLOAD, multiple=False, max_size=int(2 * services.upload_limit()), disabled=not can_upload,
                children=html.Div(["Drop a customer file here or ", html.A("choose one", href="#")] if can_upload
                                  else ["Uploading is not available to you"]),
                className="border border-2 rounded p-3 text-center bg-light", style={"borderStyle": "dashed"}),
                why_upload),
            permission_note(why_upload, ids.DATA_PERMISSION_NOTE),
            html.Div(f"Tab-, comma- or semicolon-separated text (.csv, .tsv or .txt), up to {limit_mb:g} MB, with the "
                     "columns of the customer file. It is checked and cleaned first; nothing changes until you retrain "
                     "and then activate.", className="small text-muted mt-1 mb-3"),
            dcc.Loading(html.Div(empty_state("No file uploaded yet.", "The check shows rows read and used, what each "
                                             "cleaning rule did, the columns and date format detected, and a preview."),
                                 id=ids.DATA_UPLOAD_REPORT), type="circle", delay_show=300),
            mapping_controls(),
        ]),
    ], className="shadow-sm mb-3")
    retrain = dbc.Card([
        dbc.CardHeader(html.Span("2 · Retrain on the uploaded file", className="fw-semibold")),
        dbc.CardBody([
            dbc.Row([
                # Checkboxes in a named group, not a multi-select dropdown: every choice is visible and is its
                # own labelled control, and the group's name is "Features" (dcc.Dropdown names its button by the
                # chosen values and their count, in an order that differs from what it shows).
                dbc.Col(html.Fieldset([
                    html.Legend("Features", className="mb-1", style={"fontSize": "0.875rem"}),
                    dbc.Checklist(id=ids.DATA_FEATURES, value=active_features, inline=True,
                                  className="small", options=[{"label": FEATURE_LABELS.get(f, f), "value": f}
                                                              for f in offered])]),
                        md=6),
                dbc.Col([dbc.Label("Segments (k)", html_for=ids.DATA_K, className="small mb-1"),
                         dbc.Input(id=ids.DATA_K, type="number", min=K_MIN, max=K_MAX, step=1, value=current_k),
                         html.Div(f"the active model has k={current_k}", className="small text-muted")], md=2),
                dbc.Col(html.Div([
                    _guarded(dbc.Button("Retrain", id=ids.DATA_RETRAIN_BTN, color="primary", disabled=True,
                                        className="me-2"), can["retrain"][1]),
                    dbc.Button("Cancel", id=ids.DATA_CANCEL_BTN, color="secondary", disabled=True),
                ], className="d-flex align-items-end h-100"), md=4),
            ], className="g-3 mb-2"),
            permission_note(can["retrain"][1] if can_upload else None),
            html.Div(recommendation_view(None, "") if not sweep else html.Span(
                f"The active model's data recommends k={sweep['recommended_k']}. Upload a file to see what its data "
                "supports."), id=ids.DATA_RECOMMENDATION, className="small mb-2", **{"aria-live": "polite"}),
            dbc.Button(f"Use the recommended k ({recommended})" if recommended else "Use the recommended k",
                       id=ids.DATA_USE_RECOMMENDED_K, color="secondary", size="sm", className="mb-2",
                       disabled=not recommended or recommended == current_k),
            html.Div(dbc.Progress(id=ids.DATA_PROGRESS, value=0, max=len(STEPS), striped=True, animated=True,
                                  style={"height": "1.4rem"}), id=ids.DATA_PROGRESS_BOX, style={"display": "none"},
                     className="mb-2"),
            html.Div(id=ids.DATA_RETRAIN_MSG, **{"aria-live": "polite"}),
        ]),
    ], className="shadow-sm mb-3")
    compare = dbc.Card([
        dbc.CardHeader(html.Span("3 · Compare a candidate with the active model", className="fw-semibold")),
        dbc.CardBody(dcc.Loading(html.Div(empty_state(
            "Retrain, or press Compare on a version below, to compare it with the active model.",
            "Which segment matches which, agreement on common customers, share changes, names, and the drift of the "
            "new data."), id=ids.DATA_COMPARISON), type="circle", delay_show=300)),
    ], className="shadow-sm mb-3")
    rollback = dbc.Button("Roll back to the previous version", id=ids.DATA_ROLLBACK_BTN, size="sm",
                          color="secondary", disabled=not can_rollback)
    # The provider is there whatever the role (its id is in every layout Dash checks callbacks against);
    # a disabled button inside it cannot be pressed, and the server refuses the action anyway.
    rollback = dcc.ConfirmDialogProvider(
        rollback, id=ids.DATA_ROLLBACK_CONFIRM,
        message="Roll back to the previously active version? Every page and the API will use it at once.")
    if not can_rollback:
        rollback = _guarded(rollback, why_rollback)
    admin_note = next((why for action, (ok, why) in can.items() if action in ("activate", "delete") and not ok), None)
    versions = dbc.Card([
        dbc.CardHeader(dbc.Row([
            dbc.Col(html.Span("Model versions", className="fw-semibold")),
            dbc.Col(rollback, width="auto"),
        ], className="align-items-center")),
        dbc.CardBody([permission_note(admin_note), html.Div(id=ids.DATA_ACTION_MSG, **{"aria-live": "polite"}),
                      html.Div(versions_view(services.versions_table(), can), id=ids.DATA_VERSIONS)]),
    ], className="shadow-sm mb-3")
    can_export, why_export = may("export_model")
    exports = dbc.Card([
        dbc.CardHeader(html.Span("Exports (the model the dashboard shows)", className="fw-semibold")),
        dbc.CardBody([
            dbc.Button("Segment membership (CSV)", id=ids.DATA_EXPORT_MEMBERSHIP_BTN, color="primary",
                       className="me-2 mb-2", disabled=not may("export_customers")[0]),
            dbc.Button("Profile tables (CSV)", id=ids.DATA_EXPORT_PROFILES_BTN, color="primary",
                       className="me-2 mb-2"),
            dbc.Button("Segment report (HTML, opens offline)", id=ids.DATA_EXPORT_REPORT_BTN, color="primary",
                       className="mb-2"),
            html.Div("Membership: customer ID, segment, segment name and confidence for every customer. CSV cells "
                     "are escaped so that spreadsheets never run them as formulas.", className="small text-muted"),
            permission_note(may("export_customers")[1]),
            dcc.Download(id=ids.DATA_DOWNLOAD),
            html.Hr(),
            _guarded(dbc.Button("scikit-learn model files (seed format, ZIP)", id=ids.DATA_SEED_EXPORT_BTN,
                                color="primary", className="mb-2", disabled=not can_export), why_export),
            html.Div(["kmeans_model.pkl and scaler.pkl as the original project's notebook wrote them, with "
                      "features.json naming the column order. ", html.Strong(PICKLE_WARNING)],
                     className="small text-muted"),
            permission_note(why_export),
            dcc.Download(id=ids.DATA_SEED_DOWNLOAD),
        ]),
    ], className="shadow-sm mb-3")
    return html.Div([
        page_header("Data & models", "Bring new customer data, retrain, compare the candidate with the active model, "
                                     "and choose which version the dashboard uses."),
        dbc.Alert(warning, id=ids.DATA_WARNING, color="warning", is_open=bool(warning)),
        # The upload (server-made token, name, report) lives in the tab's session: it survives navigation.
        dcc.Store(id=ids.DATA_UPLOAD_STORE, storage_type="session"), dcc.Store(id=ids.DATA_RETRAIN_STORE),
        dcc.Store(id=ids.DATA_COMPARE_STORE), dcc.Store(id=ids.DATA_ACTION_STORE, data=0),
        dcc.Store(id=ids.DATA_ADOPT_STORE, data=0),
        dcc.Store(id=MODEL_CHANGED, data=meta.get("version")),
        dcc.Store(id=ids.DATA_RECOMMENDED_K, data=recommended),
        # Who starts a retrain, for the audit log: the background job runs outside this request.
        upload, retrain, compare, versions, exports,
    ])


# ---------------------------------------------------------------- callbacks
@callback(Output(ids.DATA_UPLOAD_STORE, "data"), Output(ids.DATA_MAP_MSG, "children"),
          Input(ids.DATA_UPLOAD, "contents"), Input(ids.DATA_MAP_APPLY, "n_clicks"), State(ids.DATA_UPLOAD, "filename"),
          State({"type": ids.DATA_MAP_ROLE, "column": ALL}, "value"),
          State({"type": ids.DATA_MAP_ROLE, "column": ALL}, "id"), State(ids.DATA_MAP_KIND, "value"),
          State(ids.DATA_UPLOAD_STORE, "data"), prevent_initial_call=True)
def check_upload(contents, _apply, filename, roles, role_ids, kind, upload):
    """Validate and clean the upload, keeping it (server-made name) only when it can be used; or check it again
    with the column mapping as the user set it (a new kind of file starts from that kind's suggestion)."""
    services = get_services()
    if ctx.triggered_id == ids.DATA_MAP_APPLY:
        if not upload or not upload.get("token"):
            raise PreventUpdate
        mapping = {"input": kind}
        if kind == ((upload.get("report") or {}).get("mapping") or {}).get("input"):
            mapping["columns"] = {i["column"]: r for i, r in zip(role_ids, roles)}
        try:
            report = as_actor(services.remap_upload, upload["token"], upload["name"], mapping)
        except (DataFileError, ValueError) as exc:
            return dash.no_update, dbc.Alert(str(exc), color="danger", className="small py-2 mb-0")
        return dict(upload, report=report), None
    return accepted_upload(contents, filename), None


def accepted_upload(contents, filename) -> dict:
    """What the upload store keeps for a new file: its token, name and report, or the error and the active version."""
    services = get_services()
    try:
        report = as_actor(services.accept_upload, contents, filename)
    except (DataFileError, ValueError) as exc:
        try:
            active = services.model()[1]["version"]
        except RegistryError:
            active = None
        return {"error": str(exc), "active": active}
    return {"token": report["token"], "name": report["name"], "report": report}


@callback(Output(ids.DATA_UPLOAD_REPORT, "children"), Output(ids.DATA_RETRAIN_BTN, "disabled"),
          Input(ids.DATA_UPLOAD_STORE, "data"))
def show_upload(upload):
    """The upload's report (again, on coming back to the page); Retrain is enabled for a usable one."""
    if not upload:
        raise PreventUpdate
    if upload.get("error"):
        return upload_error_view(upload["error"], upload.get("active")), True
    if not upload.get("report"):
        raise PreventUpdate
    return upload_view(upload["report"]), not may("retrain")[0]


@callback(Output(ids.DATA_FEATURES, "options"), Output(ids.DATA_FEATURES, "value"),
          Output(ids.DATA_MAP_BOX, "style"), Output(ids.DATA_MAP_KIND, "value"),
          Input(ids.DATA_UPLOAD_STORE, "data"))
def mapped_features(upload):
    """A mapped upload's features (what its data has, the suggested ones chosen) and its mapping controls."""
    report = (upload or {}).get("report") or {}
    if not report.get("mapping"):
        if (upload or {}).get("report"):  # a canonical file: its features are the canonical ones
            options = [{"label": FEATURE_LABELS.get(f, f), "value": f} for f in MODEL_FEATURES]
            return options, dash.no_update, {"display": "none"}, dash.no_update
        return dash.no_update, dash.no_update, {"display": "none"}, dash.no_update
    options = [{"label": FEATURE_LABELS.get(f, f.replace("_", " ")), "value": f} for f in report["feature_choices"]]
    return options, list(report["features"]), {"display": "block"}, report["mapping"]["input"]


@callback(Output(ids.DATA_RECOMMENDATION, "children"), Output(ids.DATA_RECOMMENDED_K, "data"),
          Input(ids.DATA_UPLOAD_STORE, "data"), Input(ids.DATA_FEATURES, "value"))
def recommend(upload, features):
    """The k the uploaded data supports on the chosen features."""
    if not upload or not upload.get("token"):
        raise PreventUpdate
    if not features:
        return html.Span("Choose at least one feature.", className="text-danger"), None
    try:
        summary = get_services().upload_sweep(upload["token"], features,
                                              ((upload.get("report") or {}).get("mapping")))
    except ValueError as exc:
        return html.Span(str(exc), className="text-danger"), None
    return recommendation_view(summary, upload["name"]), (summary or {}).get("recommended_k")


@callback(Output(ids.DATA_USE_RECOMMENDED_K, "children"), Output(ids.DATA_USE_RECOMMENDED_K, "disabled"),
          Input(ids.DATA_RECOMMENDED_K, "data"), Input(ids.DATA_K, "value"))
def offer_recommended_k(recommended, k):
    """One click to the recommended k, offered while k differs from it."""
    if not recommended:
        return "Use the recommended k", True
    return f"Use the recommended k ({recommended})", str(k) == str(recommended)


@callback(Output(ids.DATA_K, "value"), Input(ids.DATA_USE_RECOMMENDED_K, "n_clicks"),
          State(ids.DATA_RECOMMENDED_K, "data"), prevent_initial_call=True)
def use_recommended_k(_n, recommended):
    """Set k to the recommended one."""
    if not recommended:
        raise PreventUpdate
    return int(recommended)


@callback(Output(ids.DATA_RETRAIN_STORE, "data"),
          Input(ids.DATA_RETRAIN_BTN, "n_clicks"), State(ids.DATA_UPLOAD_STORE, "data"),
          State(ids.DATA_FEATURES, "value"), State(ids.DATA_K, "value"),
          background=True, prevent_initial_call=True, interval=400,
          running=[(Output(ids.DATA_RETRAIN_BTN, "disabled"), True, False),
                   (Output(ids.DATA_CANCEL_BTN, "disabled"), False, True),
                   (Output(ids.DATA_UPLOAD, "disabled"), True, False),
                   (Output(ids.DATA_PROGRESS_BOX, "style"), {"display": "block"}, {"display": "none"})],
          progress=[Output(ids.DATA_PROGRESS, "value"), Output(ids.DATA_PROGRESS, "max"),
                    Output(ids.DATA_PROGRESS, "label")],
          progress_default=[0, len(STEPS), ""],
          cancel=[Input(ids.DATA_CANCEL_BTN, "n_clicks")])
def retrain(set_progress, _n, upload, features, k):
    """Train a candidate in another process (no Flask request here: Services come from the environment).

    The caller is the signed-in user of the request that started the job (dashboard.auth.job_caller),
    never a value the browser sent."""
    if not upload or not upload.get("token"):
        return {"error": "upload a customer file first"}
    steps, started = [], time.monotonic()

    def report(done, total, step):
        if step != "done":
            steps.append(step)
        set_progress((done, total, f"{min(done + 1, total)}/{total} · {step}: {STEP_LABELS.get(step, step)}"))
    try:
        services = Services.from_env()
        result = services.retrain_upload(upload["token"], upload["name"], k, features, progress=report,
                                         caller=job_caller(), mapping=(upload.get("report") or {}).get("mapping"))
    except (DataFileError, ValueError, RegistryError, Forbidden) as exc:
        return {"error": str(exc)}
    except Exception as exc:  # a failed job must leave a message on the page, not a stuck spinner
        traceback.print_exc(file=sys.stderr)
        return {"error": f"retraining failed ({type(exc).__name__})"}
    return dict(result, steps=steps, seconds=round(time.monotonic() - started, 1))


@callback(Output(ids.DATA_RETRAIN_MSG, "children"), Input(ids.DATA_RETRAIN_STORE, "data"), prevent_initial_call=True)
def show_retrain(result):
    """The retrain's outcome."""
    return retrain_message(result)


@callback(Output(ids.DATA_RETRAIN_MSG, "children", allow_duplicate=True), Input(ids.DATA_CANCEL_BTN, "n_clicks"),
          prevent_initial_call=True)
def cancelled(n):
    """Say what a cancel means (the job is stopped by Dash; a registry write is all-or-nothing)."""
    if not n:
        raise PreventUpdate
    return dbc.Alert("Retraining was cancelled. Nothing was activated; the versions table shows every saved version.",
                     color="secondary", className="mb-0")


@callback(Output(ids.DATA_COMPARE_STORE, "data"), Input(ids.DATA_RETRAIN_STORE, "data"),
          Input({"type": ids.DATA_COMPARE, "version": ALL}, "n_clicks"), prevent_initial_call=True)
def choose_comparison(retrained, _clicks):
    """The version to compare: the fresh candidate, or the one whose Compare button was pressed."""
    trigger = ctx.triggered_id
    if trigger == ids.DATA_RETRAIN_STORE:
        if retrained and retrained.get("version"):
            return retrained["version"]
        raise PreventUpdate
    if isinstance(trigger, dict) and ctx.triggered and ctx.triggered[0]["value"]:
        return trigger["version"]
    raise PreventUpdate


@callback(Output(ids.DATA_COMPARISON, "children"), Input(ids.DATA_COMPARE_STORE, "data"),
          Input(ids.DATA_ACTION_STORE, "data"), Input(ids.DATA_ADOPT_STORE, "data"), prevent_initial_call=True)
def show_comparison(version, _actions, _adopted):
    """The chosen version against the active model."""
    if not version:
        raise PreventUpdate
    try:
        return comparison_view(version, get_services().comparison(version), may("activate"))
    except (RegistryError, ValueError, DataFileError) as exc:
        return dbc.Alert(f"{version} cannot be compared: {exc}", color="warning", className="mb-0")


@callback(Output(ids.DATA_ACTION_MSG, "children"), Output(ids.DATA_ACTION_STORE, "data"), Output(MODEL_CHANGED, "data"),
          Input({"type": ids.DATA_ACTIVATE, "version": ALL, "where": ALL}, "submit_n_clicks"),
          Input({"type": ids.DATA_DELETE, "version": ALL}, "submit_n_clicks"),
          Input(ids.DATA_ROLLBACK_CONFIRM, "submit_n_clicks"), State(ids.DATA_ACTION_STORE, "data"),
          prevent_initial_call=True)
def act(_activate, _delete, _rollback, count):
    """Activate, delete or roll back (each confirmed first), with a clear success or error message."""
    trigger = ctx.triggered_id
    if trigger is None or not ctx.triggered or not ctx.triggered[0]["value"]:
        raise PreventUpdate  # buttons appearing in a re-drawn table, not a click
    services = get_services()
    try:
        if trigger == ids.DATA_ROLLBACK_CONFIRM:
            version = as_actor(services.rollback_version)
            message = f"Rolled back: {version} is the active model again."
        elif trigger["type"] == ids.DATA_ACTIVATE:
            version = as_actor(services.activate_version, trigger["version"])
            message = f"{version} is now the active model; every page shows it."
        else:
            message = f"{as_actor(services.delete_version, trigger['version'])} was deleted."
            version = dash.no_update
    except RegistryError as exc:
        return dbc.Alert([html.Strong("Not done: "), str(exc)], color="danger", dismissable=True,
                         className="py-2"), dash.no_update, dash.no_update
    return dbc.Alert(message, color="success", dismissable=True, className="py-2"), (count or 0) + 1, version


@callback(Output(ids.DATA_ACTION_MSG, "children", allow_duplicate=True),
          Output(ids.DATA_ADOPT_STORE, "data"),
          Input({"type": ids.DATA_ADOPT_NAMES_BTN, "version": ALL, "segment": ALL}, "n_clicks"),
          State(ids.DATA_ADOPT_STORE, "data"), prevent_initial_call=True)
def adopt_suggested_name(_clicks, count):
    """Give a candidate's segment the persona name its data suggests (a rename: analysts and admins)."""
    trigger = ctx.triggered_id
    if not isinstance(trigger, dict) or not ctx.triggered or not ctx.triggered[0]["value"]:
        raise PreventUpdate
    version, segment = str(trigger["version"]), int(trigger["segment"])
    try:
        name = get_services().adopt_suggested_name(version, segment)
    except (RegistryError, ValueError) as exc:
        return dbc.Alert([html.Strong("Not done: "), str(exc)], color="danger", dismissable=True,
                         className="py-2"), dash.no_update
    return dbc.Alert(f"Segment {segment} of {version} is now called “{name}”.", color="success", dismissable=True,
                     className="py-2"), (count or 0) + 1


@callback(Output(ids.DATA_VERSIONS, "children"), Output(ids.DATA_WARNING, "children"),
          Output(ids.DATA_WARNING, "is_open"),
          Input(ids.DATA_ACTION_STORE, "data"), Input(ids.DATA_RETRAIN_STORE, "data"),
          Input(ids.DATA_CANCEL_BTN, "n_clicks"), Input(ids.DATA_ADOPT_STORE, "data"), prevent_initial_call=True)
def refresh_versions(_actions, _retrained, _cancel, _adopted):
    """Re-draw the versions table (and the fallback warning) after any change."""
    services = get_services()
    try:
        warning = services.model_warning()
    except RegistryError as exc:
        warning = str(exc)
    allowed = {action: may(action) for action in ("activate", "delete")}
    return versions_view(services.versions_table(), allowed), warning, bool(warning)


@callback(Output(ids.DATA_DOWNLOAD, "data"), Input(ids.DATA_EXPORT_MEMBERSHIP_BTN, "n_clicks"),
          Input(ids.DATA_EXPORT_PROFILES_BTN, "n_clicks"), Input(ids.DATA_EXPORT_REPORT_BTN, "n_clicks"),
          prevent_initial_call=True)
def export(_m, _p, _r):
    """Membership CSV, profile tables CSV or the HTML report of the model the dashboard shows."""
    services = get_services()
    version = services.model()[1]["version"]
    trigger = ctx.triggered_id
    if trigger == ids.DATA_EXPORT_MEMBERSHIP_BTN:
        part = "_sample" if services.analysis().sampled else ""  # a table larger than the version's sample
        return dict(content=services.membership_csv(), filename=f"segment_membership_{version}{part}.csv",
                    type="text/csv")
    if trigger == ids.DATA_EXPORT_PROFILES_BTN:
        return dict(content=services.profiles_csv(), filename=f"segment_profiles_{version}.csv", type="text/csv")
    if trigger == ids.DATA_EXPORT_REPORT_BTN:
        return dict(content=services.report_html(), filename=f"segment_report_{version}.html", type="text/html")
    raise PreventUpdate


@callback(Output(ids.DATA_SEED_DOWNLOAD, "data"), Input(ids.DATA_SEED_EXPORT_BTN, "n_clicks"),
          prevent_initial_call=True)
def export_seed(_n):
    """The served model as the seed project's scikit-learn pickles (analysts: the server checks the role)."""
    filename, content = get_services().seed_export_zip()
    return dcc.send_bytes(content, filename)
