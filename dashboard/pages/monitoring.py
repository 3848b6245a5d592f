"""Monitoring (/monitoring): what the API and the what-if form score, against the training customers."""
import datetime as _dt

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, callback, dcc, html

from core.insight.monitoring import MIN_PREDICTIONS
from core.reading.schema import log_scale_note
from dashboard import ids
from dashboard.components import graph_card, kpi_card, may, page_header, permission_note
from dashboard.figures.monitoring import confidence_figure, drift_figure, segment_mix_figure, traffic_figure
from dashboard.monitoring import current_monitor
from dashboard.services import get_services

dash.register_page(__name__, path="/monitoring", name="Monitoring", order=6.9, title="SegmentLens · Monitoring")

REFRESH_MS = 30_000
WINDOWS = [{"label": "Since the window was reset", "value": "all"}, {"label": "Last hour", "value": "1"},
           {"label": "Last 24 hours", "value": "24"}, {"label": "Last 7 days", "value": "168"}]
_RECOMMENDATION_STYLE = {"keep": "success", "watch": "warning", "retrain": "danger"}
_ADVICE = {
    "keep": "What to do: nothing; incoming customers look like the ones the model was trained on.",
    "watch": "What to do: something moved moderately. Check again after more predictions, and compare a recent "
             "customer extract on Stability (drift of new data).",
    "retrain": "What to do: incoming customers differ from the training customers. Upload a recent extract on "
               "Data & models, retrain a candidate and compare it before activating.",
}


def _when(ts) -> str:
    return _dt.datetime.fromtimestamp(ts, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC") if ts else "counting began"


def _percent(value) -> str:
    return "–" if value is None else f"{value:.1%}"


def report_view(report: dict) -> html.Div:
    """The monitoring report (dashboard.monitoring.Monitor.report) as page content."""
    th = report["thresholds"]
    rec = report["recommendation"]
    window = report["window"]
    span = f"the last {window['hours']:g} hours" if window.get("hours") else f"since {_when(window.get('reset_at'))}"
    alerts = [dbc.ListGroupItem([dbc.Badge(a["kind"].replace("_", " "), color="danger", className="me-2"), a["message"]])
              for a in report["alerts"]]
    return html.Div([
        dbc.Alert([html.Strong(f"{rec.capitalize()}: "), "; ".join(report["reasons"]) + ".",
                   html.Div(_ADVICE[rec], className="small mt-1"),
                   html.Div(f"Model {report['model_version']}, {report['predictions']:,} predictions {span} "
                            "(API and what-if). Only counts per bin are kept, never a customer.",
                            className="small mt-1 text-muted"),
                   html.Div(report["note"], className="small mt-1") if report.get("note") else None,
                   html.Div("Counting is off on this server (SEGMENTLENS_MONITORING=off).", className="small mt-1")
                   if not report.get("enabled", True) else None],
                  color=_RECOMMENDATION_STYLE.get(rec, "secondary"), id=ids.MONITORING_SUMMARY),
        dbc.Row([
            dbc.Col(kpi_card("Predictions", f"{report['predictions']:,}", span), xs=6, lg=3),
            dbc.Col(kpi_card("Low confidence", _percent(report["low_confidence_share"]),
                             f"below {th['low_confidence']:g}; training {_percent(report['training_low_confidence_share'])}"),
                    xs=6, lg=3),
            dbc.Col(kpi_card("Segment mix PSI", "–" if report["segment_psi"] is None else f"{report['segment_psi']:.2f}",
                             f"alert above {th['alert_psi']:g}"), xs=6, lg=3),
            dbc.Col(kpi_card("Alerts", str(len(report["alerts"])),
                             f"judged from {MIN_PREDICTIONS} predictions on"), xs=6, lg=3),
        ], className="g-3 mb-3"),
        dbc.Card([dbc.CardHeader(html.Span("Alerts", className="fw-semibold")),
                  dbc.ListGroup(alerts, flush=True) if alerts else dbc.CardBody("No alert.", className="text-muted")],
                 className="mb-3 shadow-sm", id=ids.MONITORING_ALERTS),
        dbc.Row([
            dbc.Col(graph_card("Traffic over time", ids.MONITORING_TRAFFIC, height=300,
                               figure=traffic_figure(report["traffic"], report["bucket_seconds"])), lg=6),
            dbc.Col(graph_card("Segment mix, incoming vs training", ids.MONITORING_SEGMENTS, height=300,
                               figure=segment_mix_figure(report["segments"])), lg=6),
        ]),
        dbc.Row([
            dbc.Col(graph_card(f"Low-confidence predictions over time (alert: {th['low_confidence_ratio']:g}× training)",
                               ids.MONITORING_CONFIDENCE, height=300,
                               figure=confidence_figure(report["traffic"], report["training_low_confidence_share"],
                                                        th["low_confidence"], th["low_confidence_ratio"],
                                                        report["bucket_seconds"])), lg=6),
            dbc.Col(graph_card(f"Drift per feature (PSI; {th['psi_moderate']:g} watch, {th['alert_psi']:g} alert, "
                               f"{th['psi_major']:g} retrain)", ids.MONITORING_DRIFT, height=320,
                               extra=_scale_note(report["features"]),
                               figure=drift_figure(report["features"], th["alert_psi"], th["psi_moderate"],
                                                   th["psi_major"])), lg=6),
        ]),
    ])


def _scale_note(features: list[dict]):
    """Said once beside the features: which are clustered on a log scale (named as their columns)."""
    note = log_scale_note(r["feature"] for r in features)
    return html.P(note, className="small text-muted mb-0") if note else None


def layout(**_query):
    allowed, reason = may("reset_monitoring")
    return html.Div([
        page_header("Monitoring", "What the API and the what-if form score, compared with the customers the model "
                                  "was trained on. Refreshes every 30 seconds; Prometheus metrics at /metrics."),
        dbc.Row([
            dbc.Col(dcc.Dropdown(id=ids.MONITORING_WINDOW, options=WINDOWS, value="all", clearable=False,
                                 searchable=False), xs=12, md=4),
            dbc.Col([dbc.Button("Reset window", id=ids.MONITORING_RESET, color="outline-danger", size="sm",
                                disabled=not allowed, title=reason or "Forget every counted prediction and start anew"),
                     permission_note(reason)], xs=12, md="auto"),
            dbc.Col(html.Div(id=ids.MONITORING_RESET_NOTE, className="small", role="status"), xs=12, md=True),
        ], className="g-2 mb-3 align-items-center"),
        dcc.Store(id=ids.MONITORING_RESET_STORE),
        dcc.Interval(id=ids.MONITORING_REFRESH, interval=REFRESH_MS),
        dcc.Loading(html.Div(id=ids.MONITORING_CONTENT), type="circle", delay_show=400),
    ])


@callback(Output(ids.MONITORING_CONTENT, "children"), Input(ids.MONITORING_WINDOW, "value"),
          Input(ids.MONITORING_REFRESH, "n_intervals"), Input(ids.MONITORING_RESET_STORE, "data"))
def show_report(window, _tick, _reset):
    hours = None if window in (None, "all") else float(window)
    return report_view(current_monitor().report(get_services(), hours))


@callback(Output(ids.MONITORING_RESET_STORE, "data"), Output(ids.MONITORING_RESET_NOTE, "children"),
          Input(ids.MONITORING_RESET, "n_clicks"), prevent_initial_call=True)
def reset_window(n_clicks):
    # The server checks the admin role before this runs (dashboard.auth.PROTECTED_OUTPUTS), and the service again.
    who = get_services().reset_monitoring(current_monitor())
    return n_clicks, f"Window reset by {who}; counting starts again now."
