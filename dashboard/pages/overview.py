"""Overview (/): KPIs, segment sizes and spend, persona cards, data source and cleaning."""
import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, callback, dcc, html

from core.reading.schema import FEATURE_LABELS
from core.versions.registry import RegistryError
from dashboard import ids
from dashboard.components import (
    empty_state, graph_card, kpi_card, may, model_unavailable, page_header, permission_note, persona_card, table,
)
from dashboard.figures.overview import (
    headline_numbers, is_synthetic, sizes_figure, spend_share_figure,
)
from dashboard.services import get_services

dash.register_page(__name__, path="/", name="Overview", order=0, title="SegmentLens · Overview")


def _money(value: float) -> str:
    return "n/a" if value != value else f"{value:,.0f}"


def _rate(value: float) -> str:
    return "n/a" if value != value else f"{value:.0%}"


def _period(meta: dict) -> str:
    """What the spend covers: two years in the customer file, the log's dates for a transaction log."""
    if meta.get("input") in (None, "canonical"):
        return "2 years"
    dates = meta.get("transactions") if isinstance(meta.get("transactions"), dict) else {}
    if dates.get("first_date") and dates.get("latest_date"):
        return f"{dates['first_date']} to {dates['latest_date']}"
    return "in the data"


def _demo_note(a) -> dbc.Alert | None:
    """Says so when the pages show the embedded synthetic sample, not the user's customers."""
    if not is_synthetic(a.meta, a.source):
        return None
    return dbc.Alert([
        html.Strong("Demo data. "),
        "These segments come from the synthetic sample shipped with SegmentLens, not from your customers. ",
        dcc.Link("Upload your customer file on Data & models", href="/data", className="alert-link"),
        " to see your own segments.",
    ], color="info", className="py-2 mb-3", id=ids.OVERVIEW_DEMO_NOTE)


def layout(**_query):
    """The overview page."""
    try:
        return _layout(**_query)
    except RegistryError as exc:  # the active model cannot be served (core.versions.registry / services.ModelUnavailable)
        return model_unavailable(exc)


def _layout(**_query):
    a = get_services().analysis()
    names = get_services().segment_names()
    try:
        segment_rules = get_services().analyses.rule_texts()
    except (KeyError, ValueError):  # a rule is a help, never a reason for the page to fail
        segment_rules = [None] * a.k
    # From the version's precomputed views (dashboard.services): the customers themselves are not read here.
    numbers = a.numbers
    head = headline_numbers(numbers)
    response = a.response_mean
    top = head["top_segment"]
    # Data of another layout (a transaction log's customers, a mapped table) may have no income or no
    # campaign response: those figures are left out, with a one-line note, never shown as "nan".
    canonical = a.meta.get("input") in (None, "canonical")
    income = a.income_mean
    has_income, has_response = income == income, response == response
    period = _period(a.meta)
    values = get_services().values.segment_values()  # customer value stored by /value (issue 24); never fitted here
    kpis = dbc.Row([
        dbc.Col(kpi_card("Customers", f"{a.n_customers:,}", f"in {a.k} segments · {a.cleaning['rows_read']:,} rows read"),
                xs=6, md=True),
        dbc.Col(kpi_card("Top segment's share of spend", f"{head['top_spend_share']:.0%}",
                         f"{names[top]}: {head['top_customer_share']:.0%} of customers",
                         card_id=ids.OVERVIEW_TOP_SHARE), xs=6, md=True),
        dbc.Col(kpi_card("Spend per customer", _money(head["spend_per_customer"]),
                         f"{'last 2 years' if period == '2 years' else period} · {_money(head['total_spend'])} in all"), xs=6, md=True),
        dbc.Col(kpi_card("Average income", f"{income:,.0f}", "per household, yearly"), xs=6, md=True)
        if has_income or canonical else None,
        dbc.Col(kpi_card("Campaign response", "n/a" if response != response else f"{response:.1%}",
                         "accepted the last campaign"), xs=12, md=True) if has_response or canonical else None,
    ], className="g-3 mb-3", id=ids.OVERVIEW_KPIS)
    absent = [] if canonical else [what for what, has in (("income", has_income), ("campaign response", has_response))
                                   if not has]
    absent_note = (html.P(f"No {' or '.join(absent)} in this data: "
                          f"{'that figure is' if len(absent) == 1 else 'those figures are'} not shown.",
                          className="small text-muted mb-3") if absent else None)

    def figures(i: int) -> list:
        shown = [(f"Average spend ({period})", _money(numbers.loc[i, "avg_spend"])),
                 ("Average income", _money(numbers.loc[i, "avg_income"])) if has_income or canonical else None,
                 ("Answered the last campaign", _rate(numbers.loc[i, "response_rate"]))
                 if has_response or canonical else None,
                 ("Share of all spend", _rate(numbers.loc[i, "spend_share"]))]
        if values and i in values:
            shown += [(f"Mean CLV, {values[i]['horizon_text']}", _money(values[i]["clv_mean"])),
                      ("Share of customer value", _rate(values[i]["share"]))]
        return [x for x in shown if x is not None]

    cards = dbc.Row([
        dbc.Col(persona_card(i, names[i], a.personas[i].description, int(a.sizes.loc[i, "n"]),
                             float(a.sizes.loc[i, "share"]), a.personas[i].traits, numbers=figures(i),
                             rule=segment_rules[i]),
                xs=12, md=6, xl=4, className="mb-3")
        for i in range(a.k)
    ], id=ids.OVERVIEW_PERSONAS)
    cleaning = a.cleaning
    rules = [{"rule": r["name"], "action": r["action"], "rows": r["count"], "why": r["description"]}
             for r in cleaning["rules"] if r["count"]]
    source = dbc.Card(dbc.CardBody([
        html.Div([html.Strong("Data: "), a.source, html.Span(f"  (fingerprint {a.fingerprint})", className="text-muted small")]),
        html.Div([html.Strong("Model: "), f"{a.version}, k={a.k}, features "
                  f"{', '.join(FEATURE_LABELS.get(f, f) for f in a.features)}, "
                  f"trained {a.meta.get('created', '')}"]),
        html.Div([html.Strong("Cleaning: "), f"{cleaning['rows_read']:,} rows read, {cleaning['rows_used']:,} used."],
                 className="mb-2"),
        table(pd.DataFrame(rules), index=False) if rules else empty_state("No row needed cleaning."),
        html.Div([
            dbc.Button("Download the sample's segment membership (CSV)" if a.sampled else
                       "Download segment membership (CSV)", id=ids.OVERVIEW_DOWNLOAD_BTN, color="primary",
                       size="sm", className="mt-3", disabled=not may("export_customers")[0]),
            permission_note(may("export_customers")[1]),
            dcc.Download(id=ids.OVERVIEW_DOWNLOAD),
            html.P(["Every customer's segment (", f"{a.n_customers:,}", " rows) is written by ",
                    html.Code("python -m core score --out scores.csv"), ", which streams the file."],
                   className="small text-muted mt-2 mb-0") if a.sampled else None,
        ]),
    ]), className="shadow-sm mb-3", id=ids.OVERVIEW_SOURCE)
    return html.Div([
        page_header("Overview", "Who your customers are, in segments, at a glance.", basis=a.basis),
        _demo_note(a),
        kpis,
        absent_note,
        dbc.Row([
            dbc.Col(graph_card("Customers per segment", ids.OVERVIEW_SIZES, height=340,
                               figure=sizes_figure(a.sizes, names)), lg=6),
            dbc.Col(graph_card("Share of customers vs share of spend", ids.OVERVIEW_SPEND_SHARE, height=340,
                               figure=spend_share_figure(None, names, numbers=numbers)), lg=6),
        ]),
        html.H3("Personas", className="h5 mt-2"),
        cards,
        html.H3("Data and model", className="h5 mt-2"),
        source,
    ])


@callback(Output(ids.OVERVIEW_DOWNLOAD, "data"), Input(ids.OVERVIEW_DOWNLOAD_BTN, "n_clicks"),
          prevent_initial_call=True)
def download(_n):
    """Segment membership of every customer as spreadsheet-safe CSV."""
    services = get_services()
    name = "segment_membership_sample.csv" if services.analysis().sampled else "segment_membership.csv"
    return dict(content=services.membership_csv(), filename=name, type="text/csv")
