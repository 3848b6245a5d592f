"""Customer value (/value): CLV per segment, probability alive, valuable-but-slipping customers, calibration check."""
import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, callback, dcc, html

from core.versions.registry import RegistryError
from dashboard import ids
from dashboard.components import (
    as_actor, empty_state, graph_card, kpi_card, may, page_header, permission_note, table,
)
from dashboard.figures.value import frequency_check_figure, p_alive_figure, segment_value_figure, weekly_check_figure
from dashboard.services import get_services
from dashboard.services.value import ValueUnavailable

dash.register_page(__name__, path="/value", name="Value", order=6.7, title="SegmentLens · Value")

_UNITS = [{"label": "Weeks", "value": "week"}, {"label": "Days", "value": "day"}, {"label": "Months", "value": "month"}]
_SLIPPING_SHOWN = 25


def _money(value) -> str:
    return "n/a" if value is None else f"{value:,.0f}"


def _interval(low, high) -> str:
    return "no interval" if low is None or high is None else f"95%: {low:,.0f} to {high:,.0f}"


def _field(label, control, hint=None):
    return dbc.Col([dbc.Label(label, html_for=control.id, className="small fw-semibold mb-0"), control,
                    html.Div(hint, className="small text-muted") if hint else None], xs=6, md=3, className="mb-2")


def layout(**_query):
    """The value page: settings (analysts recompute), then the stored results, filled in by a callback.

    Every control is always there (disabled when the active version has no transaction log), so the
    callbacks find their ids whatever the data and the role.
    """
    services = get_services()
    note = None
    stored = {}
    try:
        services.values.source_of()
        stored = services.values.stored() or {}
    except (ValueUnavailable, RegistryError) as exc:
        note = empty_state(f"Nothing to show: {exc}.", "Train a version on a transaction log (customer, date, "
                           "amount) on Data & models to see customer lifetime value.")
    allowed_now, reason = may("retrain")
    button = dbc.Button("Recompute", id=ids.VALUE_COMPUTE_BTN, color="primary", size="sm",
                        disabled=not allowed_now or note is not None)
    form = dbc.Row([
        _field("Time unit", dcc.Dropdown(id=ids.VALUE_UNIT, options=_UNITS, value=stored.get("time_unit", "week"),
                                         clearable=False)),
        _field("Horizon (time units)", dbc.Input(id=ids.VALUE_HORIZON, type="number", min=1, step=1, size="sm",
                                                 value=stored.get("horizon")), "empty: one year"),
        _field("Yearly discount rate", dbc.Input(id=ids.VALUE_DISCOUNT, type="number", min=0, step=0.01, size="sm",
                                                 value=stored.get("discount_rate", 0.10))),
        _field("Calibration end", dbc.Input(id=ids.VALUE_CAL_END, type="text", placeholder="YYYY-MM-DD", size="sm",
                                            value=stored.get("calibration_end") or ""),
               "empty: fit on the whole log; the check fits on its first half"),
    ], className="align-items-end")
    return html.Div([
        page_header("Customer value", "BG/NBD purchases and Gamma-Gamma spend fitted by maximum likelihood on the "
                    "transaction log: probability alive, expected purchases and discounted CLV per customer and "
                    "segment."),
        html.Div(note, id=ids.VALUE_NOTE),
        dbc.Card(dbc.CardBody([form, html.Div([button, permission_note(reason)], className="d-flex gap-2"),
                               html.Div(id=ids.VALUE_STATUS, className="small mt-2", role="status")]),
                 className="mb-3 shadow-sm"),
        dcc.Loading(html.Div(id=ids.VALUE_CONTENT), type="circle"),
        dbc.Button("Download the valuable-but-slipping customers (CSV)", id=ids.VALUE_DOWNLOAD_BTN, size="sm",
                   color="secondary", className="mt-2", disabled=note is not None),
        dcc.Download(id=ids.VALUE_DOWNLOAD),
    ])


def _segments_table(segments: list[dict]) -> html.Div:
    frame = pd.DataFrame([{
        "Rank": s["rank"], "Segment": f"{s['segment']} · {s['name']}", "Customers": s["customers"],
        "Total CLV": s["clv_total"], "95% interval": _interval(s["clv_low"], s["clv_high"]).replace("95%: ", ""),
        "Mean CLV": s["clv_mean"], "Share of value": f"{s['share']:.1%}", "Mean P(alive)": f"{s['p_alive_mean']:.2f}",
    } for s in segments])
    return html.Div(table(frame, index=False), id=ids.VALUE_SEGMENTS_TABLE)


def _slipping(report: dict) -> html.Div:
    slip = report.get("slipping") or {}
    rows = slip.get("customers") or []
    names = {s["segment"]: s["name"] for s in report.get("segments") or []}
    frame = pd.DataFrame([{
        "ID": str(r["ID"]), "Past value": r["total_value"], "Repeat purchases": r["frequency"],
        "P(alive)": f"{r['p_alive']:.2f}", "CLV": r["clv"],
        **({"Segment": f"{r['segment']} · {names.get(r['segment'], '')}"} if "segment" in r else {}),
    } for r in rows[:_SLIPPING_SHOWN]])
    head = html.P(f"{slip.get('count', 0):,} customers: {slip.get('rule', '')}. The most valuable first"
                  + (f"; the first {_SLIPPING_SHOWN} shown, the download has up to {len(rows):,}."
                     if len(rows) > _SLIPPING_SHOWN else "."), className="small")
    body = table(frame, index=False) if len(frame) else empty_state("Nobody is valuable and slipping.")
    return html.Div([head, html.Div(body, id=ids.VALUE_SLIPPING_TABLE),
                     html.Div("The download button at the bottom of the page has the whole list.",
                              className="small text-muted")])


def content(report: dict) -> html.Div:
    """The stored value report as page content."""
    t = report["totals"]
    unit = report["time_unit"]
    horizon = f" over {report['horizon']} {unit}s at {report['discount_rate']:.0%} a year"
    kpis = dbc.Row([
        dbc.Col(kpi_card("Customers", f"{report['customers']:,}", f"{report['repeat_customers']:,} bought again"),
                xs=6, lg=3, className="mb-2"),
        dbc.Col(kpi_card("Total CLV", _money(t["clv_total"]), _interval(t.get("clv_low"), t.get("clv_high"))),
                xs=6, lg=3, className="mb-2"),
        dbc.Col(kpi_card("Mean CLV", f"{t['clv_mean']:,.2f}", horizon.strip()), xs=6, lg=3, className="mb-2"),
        dbc.Col(kpi_card("Mean probability alive", f"{t['p_alive_mean']:.2f}",
                         f"{(report.get('slipping') or {}).get('count', 0):,} valuable but slipping"),
                xs=6, lg=3, className="mb-2"),
    ], id=ids.VALUE_KPIS)
    p, s = report["params"], report["spend_params"]
    se, sse = report.get("params_se") or {}, report.get("spend_params_se") or {}

    def est(values, errors, key):
        err = errors.get(key)
        return f"{key} = {values[key]:.4g}" + (f" (SE {err:.2g})" if err is not None else "")

    params = html.Div([
        html.Div(["BG/NBD (", unit, "s): ", ", ".join(est(p, se, k) for k in ("r", "alpha", "a", "b")),
                  f"; log-likelihood {report['log_likelihood']:,.1f}"]),
        html.Div(["Gamma-Gamma: ", ", ".join(est(s, sse, k) for k in ("p", "q", "gamma")),
                  f" ({report['spend_customers']:,} customers with repeat purchases)"]),
        html.Div(f"Purchases {report['first_date']} to {report['latest_date']}"
                 + (f"; fitted on purchases up to {report['calibration_end']}" if report.get("calibration_end")
                    else "; fitted on the whole log")),
        html.Div(report["interval_method"] + "."),
        *[html.Div(f"Note: {n}") for n in report.get("notes") or []],
    ], className="small text-muted mb-3", id=ids.VALUE_PARAMS)
    segments = report.get("segments") or []
    hold = report.get("holdout")
    check_note = None
    if hold and hold.get("separate_fit"):
        check_note = html.Div("Checked by a second fit on the first half of the log's dates (the values above use "
                              "the whole log).", className="small text-muted")
    return html.Div([
        kpis, params,
        dbc.Row([
            dbc.Col(graph_card(f"Value per segment{horizon}", ids.VALUE_SEGMENTS_GRAPH,
                               figure=segment_value_figure(segments, horizon), height=420), lg=6),
            dbc.Col(graph_card("Probability alive per segment", ids.VALUE_ALIVE_GRAPH,
                               figure=p_alive_figure(segments), height=420), lg=6),
        ]),
        _segments_table(segments) if segments else None,
        html.H2("Valuable but slipping", className="h5 mt-3"),
        _slipping(report),
        html.H2("Calibration check", className="h5 mt-4"),
        dbc.Alert(hold["sentence"] if hold else "No calibration check: choose a calibration end and recompute.",
                  color="light", className="border", id=ids.VALUE_CHECK_SENTENCE),
        check_note,
        dbc.Row([
            dbc.Col(graph_card("Holdout purchases per calibration frequency", ids.VALUE_CHECK_FREQ_GRAPH,
                               figure=frequency_check_figure(hold)), lg=6),
            dbc.Col(graph_card("Cumulative repeat purchases per week", ids.VALUE_CHECK_WEEKLY_GRAPH,
                               figure=weekly_check_figure(hold)), lg=6),
        ]),
    ])


def _settings(unit, horizon, discount, cal_end) -> dict:
    """The form as compute() arguments; ValueError naming the field."""
    if horizon not in (None, ""):
        try:
            horizon = int(float(horizon))
        except (TypeError, ValueError):
            raise ValueError(f"horizon: {horizon!r} is not a whole number") from None
        if horizon < 1:
            raise ValueError("horizon: must be at least 1 time unit")
    try:
        discount = 0.10 if discount in (None, "") else float(discount)
    except (TypeError, ValueError):
        raise ValueError(f"discount rate: {discount!r} is not a number such as 0.10") from None
    if not 0 <= discount < 10:
        raise ValueError("discount rate: a yearly rate from 0 to 10 (0.10 = 10%)")
    return {"time_unit": unit or "week", "horizon": horizon or None, "discount_rate": discount,
            "calibration_end": (cal_end or "").strip() or None}


# Recomputing and showing are two callbacks: the recompute's output (the status line) is in
# dashboard.auth.PROTECTED_OUTPUTS, so viewers are refused it while they still see the stored results.
@callback(Output(ids.VALUE_STATUS, "children"), Input(ids.VALUE_COMPUTE_BTN, "n_clicks"),
          State(ids.VALUE_UNIT, "value"), State(ids.VALUE_HORIZON, "value"), State(ids.VALUE_DISCOUNT, "value"),
          State(ids.VALUE_CAL_END, "value"), prevent_initial_call=True)
def recompute(n_clicks, unit, horizon, discount, cal_end):
    """A recompute with the form's settings (analysts and admins; the service checks the role again, audited)."""
    if not n_clicks:
        return dash.no_update
    allowed_now, reason = may("retrain")
    if not allowed_now:
        return _warning(reason)
    try:
        as_actor(get_services().values.compute, **_settings(unit, horizon, discount, cal_end))
    except PermissionError as exc:  # core.access.accounts.Forbidden: the service's own check
        return _warning(str(exc))
    except (ValueError, ValueUnavailable, RegistryError) as exc:
        return _warning(f"Not recomputed: {exc}")
    return "Recomputed and stored with the version."


def _warning(text: str):
    # a refused or invalid recompute keeps the stored results and says why
    return dbc.Alert(text, color="warning", className="py-1 mb-0")


@callback(Output(ids.VALUE_CONTENT, "children"), Input(ids.VALUE_STATUS, "children"))
def show(_status):
    """The stored results: on load and after each recompute (its status line changes)."""
    services = get_services()
    try:
        services.values.source_of()
    except (ValueUnavailable, RegistryError):
        return None  # the note at the top says why
    try:
        report = services.values.report()
    except ValueUnavailable as exc:
        return empty_state(f"No value: {exc}")
    except RegistryError as exc:
        return empty_state(f"Nothing to show: {exc}")
    return content(report)


@callback(Output(ids.VALUE_DOWNLOAD, "data"), Input(ids.VALUE_DOWNLOAD_BTN, "n_clicks"), prevent_initial_call=True)
def download(n_clicks):
    """The stored valuable-but-slipping customers as spreadsheet-safe CSV (analysts and admins, checked and
    audited by the service)."""
    if not n_clicks:
        return dash.no_update
    try:
        text, filename = as_actor(get_services().values.slipping_csv)
    except (ValueUnavailable, RegistryError, PermissionError):
        return dash.no_update
    return dcc.send_string(text, filename)
