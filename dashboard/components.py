"""Small layout factories: navbar, KPI card, graph card, persona card, empty state."""
from __future__ import annotations

import functools
import numbers

import dash
import dash_bootstrap_components as dbc
from dash import dcc, html

from . import ids
from .figures.describe import describe
from .theme import segment_colour, segment_text_colour

__all__ = ["GRAPH_CONFIG", "graph", "chart_text", "described", "describes_figures", "scroll_box", "navbar",
           "kpi_card", "graph_card", "persona_card", "empty_state", "segment_badge", "segment_options", "page_header",
           "table", "may", "permission_note", "as_actor", "model_unavailable"]


# Every chart's mode bar: on hover only (it covered the first bar), no plotly logo, and nothing that sends
# a chart to Plotly's cloud (customer data never leaves the app; plotlyServerURL stays unset). plotly.js 3
# shows its "Share chart..." button (sendChartToCloud) unless showSendToCloud is False.
GRAPH_CONFIG = {
    "displaylogo": False,
    "displayModeBar": "hover",
    "responsive": True,
    "showSendToCloud": False,
    "showEditInChartStudio": False,
    "modeBarButtonsToRemove": ["sendChartToCloud", "sendDataToCloud", "editInChartStudio"],
}


def graph(graph_id: str, *, config: dict | None = None, **kwargs) -> dcc.Graph:
    """A dcc.Graph with the app's GRAPH_CONFIG (``config`` adds to it, e.g. scrollZoom)."""
    return dcc.Graph(id=graph_id, config={**GRAPH_CONFIG, **(config or {})}, **kwargs)


def chart_text(graph_id: str, figure=None, title: str | None = None) -> list:
    """A chart's text alternative: its summary sentence and, behind "View as table", its data (issue 16).

    Filled from ``figure`` when the layout has one; a callback that draws the chart later refreshes both with
    :func:`described`. The ids are pattern-matching ({"type": CHART_SUMMARY / CHART_TABLE, "graph": graph_id}).
    """
    summary, rows = _chart_words(figure)
    # Not a live region: a form that redraws charts on every keystroke would talk over the answer itself.
    return [html.P(summary, id={"type": ids.CHART_SUMMARY, "graph": graph_id}, className="chart-summary small"),
            html.Details([html.Summary("View as table"),
                          scroll_box(html.Div(rows, id={"type": ids.CHART_TABLE, "graph": graph_id}),
                                     f"{title or 'Chart'}: data")], className="chart-table")]


def _chart_words(figure) -> tuple[str, list]:
    """(summary, table components) of a figure; a place-holder sentence while it is not drawn yet."""
    if figure is None:
        return "The chart is being drawn.", []
    text = describe(figure)
    head = html.Thead(html.Tr([html.Th(c, scope="col") for c in text.columns]))
    body = html.Tbody([html.Tr([html.Th(row[0], scope="row", className="fw-normal")] + [html.Td(v) for v in row[1:]])
                       for row in text.rows])
    out = [dbc.Table([head, body], bordered=False, hover=False, size="sm", className="mb-0")] \
        if text.columns and text.rows else []
    if text.note:
        out.append(html.P(text.note, className="small text-muted mb-0"))
    return text.summary, out


def described(figure, graph_id: str):
    """``figure``, with the chart's summary and table updated beside it (call it in a callback that returns a
    figure for ``graph_id``; outside a callback it only returns the figure)."""
    summary, rows = _chart_words(figure)
    try:
        dash.set_props({"type": ids.CHART_SUMMARY, "graph": graph_id}, {"children": summary})
        dash.set_props({"type": ids.CHART_TABLE, "graph": graph_id}, {"children": rows})
    except (LookupError, AttributeError):  # not inside a callback (a layout, a unit test)
        pass
    return figure


def describes_figures(func):
    """Decorator for a page callback (placed under ``@callback``): every figure it returns for a graph gets that
    chart's summary and table refreshed beside it (:func:`described`), whatever its outputs' order."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        result = func(*args, **kwargs)
        outputs = dash.callback_context.outputs_list
        pairs = [(outputs, result)] if isinstance(outputs, dict) else zip(
            outputs, result if isinstance(result, list | tuple) else [result])
        for output, value in pairs:
            if (isinstance(output, dict) and output.get("property") == "figure" and isinstance(output.get("id"), str)
                    and (hasattr(value, "to_plotly_json") or (isinstance(value, dict) and "data" in value))):
                described(value, output["id"])
        return result
    return wrapper


def scroll_box(child, label: str = "Table") -> html.Div:
    """A box that scrolls sideways when its content is wider than the screen; focusable, so a keyboard can
    scroll it too (WCAG 2.1.1), and named for a screen reader."""
    return html.Div(child, className="table-responsive", tabIndex="0", role="region", **{"aria-label": label})


def navbar() -> dbc.Navbar:
    """Top navigation built from Dash's page registry, with the data/model status on the right."""
    pages = sorted(dash.page_registry.values(), key=lambda p: p.get("order", 99))
    links = [dbc.NavItem(dbc.NavLink(p["name"], href=p["relative_path"], active="exact")) for p in pages]
    return dbc.Navbar(
        dbc.Container([
            dbc.NavbarBrand([html.Span("◉ ", className="text-primary"), "SegmentLens"], href="/"),
            dbc.NavbarToggler(id=ids.NAV_TOGGLER),
            dbc.Collapse(dbc.Nav(links, navbar=True, className="me-auto"), id=ids.NAV, navbar=True,
                         is_open=False),
            html.Div(id=ids.NAV_STATUS, className="small text-muted text-end"),
        ], fluid=True),
        color="light", dark=False, className="mb-3 border-bottom", expand="lg",
    )


def page_header(title: str, subtitle: str | None = None, basis: dict | None = None) -> html.Div:
    """Page title with an optional one-line explanation, and what it is computed on when that is a sample.

    ``basis`` is ``Analysis.basis`` (core.versions.sample_basis): set when the version's table is larger than
    the sample the pages are built from; the page then says so under its title.
    """
    return html.Div([html.H1(title, className="h4 mb-1"),
                     html.P(subtitle, className="text-muted mb-3") if subtitle else None,
                     sample_note(basis)])


def sample_note(basis: dict | None):
    """One line saying the page stands on a stratified sample of the customers (None for every customer)."""
    if not basis:
        return None
    return html.P([html.Strong("Sample: "),
                   f"charts of customers, medians, rules and stability use a stratified sample of "
                   f"{int(basis['rows']):,} of the {int(basis['of_rows']):,} customers (in proportion to each "
                   f"segment, seed {int(basis['seed'])}); customer counts, shares and averages per segment cover "
                   "every customer."], className="small mb-3 sample-note", id=ids.SAMPLE_NOTE)


def kpi_card(label: str, value: str, hint: str | None = None, card_id: str | None = None) -> dbc.Card:
    """A KPI: big number, label, optional hint."""
    body = [html.Div(label, className="text-muted small text-uppercase"),
            html.Div(value, className="fs-4 fw-semibold kpi-value")]
    if hint:
        body.append(html.Div(hint, className="small text-muted"))
    kwargs = {"id": card_id} if card_id else {}
    return dbc.Card(dbc.CardBody(body), className="h-100 shadow-sm kpi-card", **kwargs)


def graph_card(title: str, graph_id: str, *, height: int = 360, extra=None, config: dict | None = None,
               figure=None, min_width: int | None = None) -> dbc.Card:
    """A titled card holding one graph, with a loading indicator.

    ``min_width`` (px): below it the chart scrolls sideways inside its card instead of squeezing (a phone).
    """
    style = {"height": f"{height}px", **({"minWidth": f"{min_width}px"} if min_width else {})}
    chart = graph(graph_id, config=config, style=style, **({"figure": figure} if figure is not None else {}))
    body = dcc.Loading(chart, type="circle", delay_show=250)
    if min_width:
        body = html.Div(body, className="graph-scroll")
    # The chart as a figure named by its title, with its summary and data as text under it (issue 16).
    body = html.Figure([body, *chart_text(graph_id, figure, title)], className="chart-figure", **{"aria-label": title})
    return dbc.Card([
        dbc.CardHeader(html.H2(title, className="card-heading")),
        # `is not None`: a childless component (a lone dcc.Dropdown) has len() 0, so it is falsy.
        dbc.CardBody([extra, body] if extra is not None else body),
    ], className="mb-3 shadow-sm")


def segment_badge(segment: int, name: str, href: str | None = None) -> html.Span:
    """A segment's name on its colour; links to its profile when ``href`` is given."""
    badge = html.Span(name, className="badge segment-badge",
                      style={"backgroundColor": segment_colour(segment), "color": segment_text_colour(segment)})
    return dcc.Link(badge, href=href) if href else badge


def persona_card(segment: int, name: str, description: str, size: int, share: float, traits: list,
                 numbers: list[tuple[str, str]] | None = None, rule: str | None = None) -> dbc.Card:
    """One segment at a glance: name on its colour, size, key numbers (label, value), description, top traits."""
    facts = html.Dl(sum(([html.Dt(label, className="col-7 fw-normal text-muted"),
                          html.Dd(value, className="col-5 mb-0 text-end fw-semibold")] for label, value in numbers),
                        []), className="row small mb-2 persona-numbers") if numbers else None
    return dbc.Card([
        html.Div(className="persona-stripe", style={"backgroundColor": segment_colour(segment)}),
        dbc.CardBody([
            html.Div(dcc.Link(name, href=f"/profiles?segment={segment}", className="fw-semibold"),
                     className="mb-1"),
            html.Div(f"Segment {segment} · {size:,} customers · {share:.0%}", className="small text-muted mb-2"),
            facts,
            html.P(description, className="small mb-2"),
            html.P([html.Span("Rule: ", className="fw-semibold"), rule], className="small mb-2 persona-rule")
            if rule else None,
            html.Div([html.Span(t, className="badge bg-light text-dark border me-1 mb-1") for t in traits]),
        ]),
    ], className="h-100 shadow-sm persona-card")


def empty_state(message: str, hint: str | None = None) -> html.Div:
    """A helpful message where there is nothing to show yet."""
    return html.Div([html.P(message, className="mb-1"), html.P(hint, className="small text-muted") if hint else None],
                    className="empty-state text-center p-4 border rounded bg-light")


def segment_options(names: list[str]) -> list[dict]:
    """Dropdown options for segments: label 'i · name', value i."""
    return [{"label": f"{i} · {n}", "value": i} for i, n in enumerate(names)]


def table(frame, *, index: bool = True, float_format: str = "{:,.2f}", class_name: str = "") -> html.Div:
    """A compact Bootstrap table from a small DataFrame, in a box that scrolls sideways when it is too wide."""
    df = frame.reset_index() if index else frame

    def fmt(v):
        if isinstance(v, bool):
            return str(v)
        if isinstance(v, numbers.Integral):
            return f"{v:,}"
        if isinstance(v, numbers.Real):
            return float_format.format(v)
        return str(v)
    # A column without a heading (an unnamed index) still gets one for screen readers.
    head = html.Thead(html.Tr([html.Th(str(c) if str(c).strip() else html.Span("Row", className="visually-hidden"),
                                       scope="col") for c in df.columns]))
    body = html.Tbody([html.Tr([html.Td(fmt(v)) for v in row]) for row in df.itertuples(index=False)])
    return scroll_box(dbc.Table([head, body], bordered=False, hover=True, size="sm", className=f"mb-0 {class_name}"),
                      "Table: " + ", ".join(str(c) for c in list(df.columns)[:3]))


def may(action: str) -> tuple[bool, str | None]:
    """Whether the caller may use a control for ``action`` (dashboard.auth.permission), and if not, why.

    An app built without sign-in (dashboard.auth.install_auth not called, as in some unit tests) has no
    roles to check: every control stays enabled, as before accounts existed.
    """
    import flask

    from .auth import permission

    if flask.has_request_context() and "segmentlens_auth" not in flask.current_app.extensions:
        return True, None
    return permission(action)


def permission_note(reason: str | None, note_id=None) -> html.Div | None:
    """The reason a control is disabled, as a small muted line beside it (None when it is enabled)."""
    if not reason:
        return None
    return html.Div(reason, className="small text-muted permission-note", **({"id": note_id} if note_id else {}))


def as_actor(method, *args, actor: str | None = None, **kwargs):
    """Call a state-changing Services method with ``actor=`` (the caller, for the audit log) when it takes one.

    ``actor`` defaults to dashboard.auth.actor() of the current request.
    """
    import inspect

    try:
        takes_actor = "actor" in inspect.signature(method).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins without a signature
        takes_actor = False
    if takes_actor:
        if actor is None:
            from .auth import actor as current_actor

            actor = current_actor()
        kwargs["actor"] = actor
    return method(*args, **kwargs)


def model_unavailable(error: Exception) -> html.Div:
    """A page's place-holder while no model can be served (the banner above says why for every page)."""
    return empty_state(f"Nothing to show: {error}",
                       "An admin can activate another version, or roll back, on Data & models (/data).")
