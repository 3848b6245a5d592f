"""The /data page's database source card: an admin saves a PostgreSQL source and copies it for the retrain.

Not a page of its own: :mod:`dashboard.pages.data` places :func:`db_card` and calls
:func:`register` each time Dash runs the page module (so every app gets the callback). The
copy becomes the page's upload (the same store), so the preview, the mapping, the k advice and
the retrain are the upload's. The services check the role; the controls here only mirror it.
"""
from __future__ import annotations

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, dcc, html

from core.access.accounts import Forbidden
from core.reading.loading import DataFileError
from dashboard import ids
from dashboard.components import may, permission_note
from dashboard.services import get_services

__all__ = ["db_card", "source_view", "sync_view", "register"]


def source_view(source: dict | None) -> html.Div:
    """The saved source as plain text (no password is ever in it)."""
    if not source:
        return html.Div("No database source is saved.", className="small text-muted")
    return html.Div([html.Span("Saved source: ", className="small text-muted"), html.Code(source["display"]),
                     html.Span(f" · by {source.get('saved_by') or '?'} at {source.get('saved_at') or '?'}",
                               className="small text-muted")])


def sync_view(entry: dict | None, configured: bool) -> html.Div | None:
    """The latest rewrite of the SEGMENTLENS_SYNC_URL table: time, table, outcome, version and rows."""
    if not configured:
        return None
    if not entry:
        return html.Div("Sync table: not written yet (it is rewritten on every activation and rollback).",
                        className="small text-muted", id=ids.DATA_DB_SYNC)
    when = str(entry.get("time") or "")[:19].replace("T", " ")
    return html.Div([html.Span("Last sync: ", className="small fw-semibold"),
                     html.Span(f"{when} UTC · ", className="small"), html.Code(str(entry.get("target") or "")),
                     html.Span(f" · {entry.get('outcome')} · {entry.get('detail') or ''}", className="small")],
                    id=ids.DATA_DB_SYNC)


def db_card(services) -> dbc.Card:
    """The card: the saved source for everyone; URL, query and the copy button for admins."""
    can, why = may("db_source")
    source = services.db_source()
    sync = sync_view(services.last_sync(), _sync_configured())
    controls = html.Div([
        dbc.Label("Database URL (no password: the server reads it from PGPASSWORD, ~/.pgpass, a service file or "
                  "SEGMENTLENS_DB_SECRETS)", html_for=ids.DATA_DB_URL, className="small mb-1"),
        dbc.Input(id=ids.DATA_DB_URL, type="text", disabled=not can, value=(source or {}).get("url") if can else None,
                  placeholder="postgresql://analyst@db.example:5432/crm?table=crm.customers", className="mb-2"),
        dbc.Label("Query (optional, instead of ?table=)", html_for=ids.DATA_DB_QUERY, className="small mb-1"),
        dbc.Textarea(id=ids.DATA_DB_QUERY, disabled=not can, value=(source or {}).get("query") if can else None,
                     placeholder="SELECT ... FROM crm.orders WHERE day >= '2024-01-01'", rows=2, className="mb-2"),
        dbc.Button("Save and preview", id=ids.DATA_DB_SAVE, color="primary", disabled=not can, className="mb-2"),
        permission_note(why),
    ], style=None if can else {"display": "none"})
    return dbc.Card([
        dbc.CardHeader(html.Span("… or read customers or orders from PostgreSQL", className="fw-semibold")),
        dbc.CardBody([
            html.Div(source_view(source), id=ids.DATA_DB_SAVED, className="mb-2"),
            controls,
            permission_note(why) if not can else None,
            dcc.Loading(html.Div(id=ids.DATA_DB_MSG, **{"aria-live": "polite"}), type="circle", delay_show=300),
            sync,
        ]),
    ], className="shadow-sm mb-3")


def _sync_configured() -> bool:
    import os

    from core.reading.postgres import SYNC_ENV

    return bool(os.environ.get(SYNC_ENV))


def register() -> None:
    """Register the card's callback (called by the page module, which Dash runs once per app)."""

    @callback(Output(ids.DATA_UPLOAD_STORE, "data", allow_duplicate=True), Output(ids.DATA_DB_MSG, "children"),
              Output(ids.DATA_DB_SAVED, "children"),
              Input(ids.DATA_DB_SAVE, "n_clicks"), State(ids.DATA_DB_URL, "value"), State(ids.DATA_DB_QUERY, "value"),
              prevent_initial_call=True)
    def save_and_preview(_n, url, query):
        """Save the source, copy it and hand the copy to the upload's report and retrain (admins)."""
        services = get_services()
        try:
            saved = services.save_db_source(url or "", query)
            report = services.preview_db_source()
        except (DataFileError, ValueError, Forbidden) as exc:  # PostgresError is a DataFileError: one line
            return dash.no_update, dbc.Alert(str(exc), color="danger", className="small py-2 mb-0"), \
                source_view(services.db_source())
        note = dbc.Alert(f"Copied {report['rows_copied']:,} rows from {saved['display']}. Check the report above, "
                         "then retrain.", color="success", className="small py-2 mb-0")
        return {"token": report["token"], "name": report["name"], "report": report}, note, source_view(saved)
