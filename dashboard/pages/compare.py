"""Compare two segments (/compare?a=i&b=j): KPIs, effect sizes, distributions, product and channel mix."""
import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, clientside_callback, dcc, html

from core.insight.profiles import PROFILE_COLUMNS, own_names
from dashboard import ids
from dashboard.components import describes_figures, empty_state, graph_card, page_header, segment_options, table
from dashboard.figures.common import feature_label
from dashboard.figures.compare import (
    comparison_summary, comparison_table, effect_size_figure, mix_pair_figure, overlay_distribution, segment_kpis,
)
from dashboard.services import get_services
from dashboard.theme import segment_colour

dash.register_page(__name__, path="/compare", name="Compare", order=2, title="SegmentLens · Compare")


def parse_pair(a, b, k: int) -> tuple[int, int]:
    """Segments A and B from URL/dropdown values; invalid values fall back to 0 and the first other segment."""
    def parse(value):
        try:
            seg = int(str(value).strip())
        except (TypeError, ValueError):
            return None
        return seg if 0 <= seg < k else None
    first, second = parse(a), parse(b)
    first = 0 if first is None else first
    if second is None:
        second = next((s for s in range(k) if s != first), first)
    return first, second


def _kpis(a, names: list[str], seg: int, letter: str) -> list:
    """Header (letter + name on the segment's colour) and the segment's KPIs."""
    values = segment_kpis(a.sizes, a.stats, a.economics, seg)
    return [
        html.Div([html.Span(letter, className="badge segment-badge me-2",
                            style={"backgroundColor": segment_colour(seg)}),
                  dcc.Link(f"{seg} · {names[seg]}", href=f"/profiles?segment={seg}", className="fw-semibold")],
                 className="mb-2 compare-kpi-title"),
        dbc.Row([dbc.Col([html.Div(label, className="text-muted small text-nowrap"),
                          html.Div(value, className="fs-5 fw-semibold kpi-value")], xs=6, sm=4, xl=True,
                         className="mb-2")
                 for label, value in values], className="g-2"),
    ]


def _summary(comparison, a_seg: int, b_seg: int, names: list[str]):
    """The three biggest differences in plain words (text, never markup: names are user-typed)."""
    lines = comparison_summary(comparison, a_seg, b_seg, names)
    if a_seg == b_seg:
        return html.P("Pick two different segments to see how they differ.", className="mb-0")
    if not lines:
        return html.P("These two segments differ little: no feature differs by a medium effect "
                      "(Cohen's d 0.5) or more.", className="mb-0")
    return [html.Strong("Biggest differences"), html.Ul([html.Li(line) for line in lines], className="mb-0 mt-1")]


def _views(services, a_seg: int, b_seg: int) -> tuple:
    """KPIs, summary, effect sizes, the table and the mixes for segments A and B."""
    a = services.analysis()
    names = services.segment_names()
    comparison = services.compare_segments(a_seg, b_seg).rename(index=own_names(a.meta))  # the user's names
    diff_table = (empty_state("Pick two different segments to see how they differ.") if a_seg == b_seg
                  else table(comparison_table(comparison, a_seg, b_seg), index=False, class_name="small"))
    return (
        _kpis(a, names, a_seg, "A"), _kpis(a, names, b_seg, "B"), _summary(comparison, a_seg, b_seg, names),
        effect_size_figure(comparison, a_seg, b_seg, names), diff_table,
        mix_pair_figure(a.product_mix, a_seg, b_seg, names, what="spend"),
        mix_pair_figure(a.channel_mix, a_seg, b_seg, names, what="purchases"),
    )


def layout(a=None, b=None, **_query):
    """The compare page; ``?a=i&b=j`` selects the two segments."""
    services = get_services()
    analysis = services.analysis()
    header = page_header("Compare", "Two segments side by side: how they differ, feature by feature, "
                                     "with effect sizes.", basis=analysis.basis)
    if analysis.k < 2:
        return html.Div([header, empty_state("This model has a single segment: there is nothing to compare.",
                                             "Train a model with two or more segments.")])
    names = services.segment_names()
    a_seg, b_seg = parse_pair(a, b, analysis.k)
    kpi_a, kpi_b, summary, diff, diff_table, product, channel = services.view(
        "compare", lambda: _views(services, a_seg, b_seg), a_seg, b_seg)
    own = own_names(analysis.meta)
    features = [own.get(c, c) for c in PROFILE_COLUMNS if c in analysis.frame]
    # Open on the feature that separates the two segments most: the first thing worth looking at.
    ranked = services.compare_segments(a_seg, b_seg).rename(index=own)["cohens_d"].abs().dropna()
    feature = ranked.idxmax() if len(ranked) and a_seg != b_seg else (
        "Total_Spending" if "Total_Spending" in features or not features else features[0])
    options = segment_options(names)
    controls = dbc.Row([
        dbc.Col([dbc.Label("Segment A", html_for=ids.COMPARE_A, className="fw-semibold"),
                 dcc.Dropdown(id=ids.COMPARE_A, options=options, value=a_seg, clearable=False)], xs=12, md=5),
        dbc.Col(dbc.Button("⇄ Swap", id=ids.COMPARE_SWAP, color="primary", outline=True,
                           className="w-100", title="Swap A and B"), xs=12, md=2),
        dbc.Col([dbc.Label("Segment B", html_for=ids.COMPARE_B, className="fw-semibold"),
                 dcc.Dropdown(id=ids.COMPARE_B, options=options, value=b_seg, clearable=False)], xs=12, md=5),
    ], className="g-2 mb-3 align-items-end")
    feature_dropdown = dcc.Dropdown(
        id=ids.COMPARE_FEATURE, options=[{"label": feature_label(c), "value": c} for c in features],
        value=feature, clearable=False, className="mb-2")
    return html.Div([
        dcc.Store(id=ids.COMPARE_URL_SYNC),
        header,
        controls,
        dbc.Row([
            dbc.Col(dbc.Card(dbc.CardBody(kpi_a, id=ids.COMPARE_KPI_A), className="h-100 shadow-sm"),
                    xs=12, md=6, className="mb-3"),
            dbc.Col(dbc.Card(dbc.CardBody(kpi_b, id=ids.COMPARE_KPI_B), className="h-100 shadow-sm"),
                    xs=12, md=6, className="mb-3"),
        ], id=ids.COMPARE_KPIS),
        dbc.Alert(html.Div(summary, id=ids.COMPARE_SUMMARY, **{"aria-live": "polite"}), color="light",
                  className="border shadow-sm small"),
        dbc.Row([
            dbc.Col(graph_card("Differences by feature (effect size)", ids.COMPARE_DIFF,
                               height=diff.layout.height or 320, figure=diff), xs=12, lg=6),
            dbc.Col(dbc.Card([
                dbc.CardHeader(html.Span("Means and effect sizes", className="fw-semibold")),
                dbc.CardBody([
                    html.P("Cohen's d: difference in pooled standard deviations. Negligible below 0.2, "
                           "small below 0.5, medium below 0.8, large from 0.8.", className="small text-muted"),
                    html.Div(diff_table, id=ids.COMPARE_TABLE),
                ]),
            ], className="mb-3 shadow-sm"), xs=12, lg=6),
        ]),
        dbc.Row([
            dbc.Col(graph_card("Distribution of a feature", ids.COMPARE_DISTRIBUTION, height=340,
                               extra=feature_dropdown,
                               figure=services.view("compare-distribution", lambda: overlay_distribution(
                                   analysis.frame, feature, a_seg, b_seg, names), feature, a_seg, b_seg)),
                    xs=12, lg=4),
            _mix_col(graph_card("Product mix: share of spend", ids.COMPARE_PRODUCT_MIX, height=320, figure=product),
                     analysis.product_mix),
            _mix_col(graph_card("Channel mix: share of purchases", ids.COMPARE_CHANNEL_MIX, height=320,
                                figure=channel), analysis.channel_mix),
        ]),
        _absent_mixes(analysis),
    ])


def _has_mix(mix) -> bool:
    """True when the data has the columns behind a product or channel mix."""
    return mix is not None and getattr(mix, "size", 0) > 0 and bool(mix.notna().to_numpy().any())


def _mix_col(card, mix) -> dbc.Col:
    """A mix chart's column, hidden (its ids kept for the callback) when the data has no such columns."""
    return dbc.Col(card, xs=12, md=6, lg=4, style=None if _has_mix(mix) else {"display": "none"})


def _absent_mixes(analysis):
    """One line naming the mixes this data cannot show (product categories, purchase channels)."""
    absent = [what for what, mix in (("product categories", analysis.product_mix),
                                     ("purchase channels", analysis.channel_mix)) if not _has_mix(mix)]
    if not absent:
        return None
    return html.P(f"No {' or '.join(absent)} in this data: "
                  f"{'that mix is' if len(absent) == 1 else 'those mixes are'} not shown.",
                  className="small text-muted", id=ids.COMPARE_ABSENT_NOTE)


@callback(
    Output(ids.COMPARE_KPI_A, "children"), Output(ids.COMPARE_KPI_B, "children"),
    Output(ids.COMPARE_SUMMARY, "children"), Output(ids.COMPARE_DIFF, "figure"), Output(ids.COMPARE_TABLE, "children"),
    Output(ids.COMPARE_PRODUCT_MIX, "figure"), Output(ids.COMPARE_CHANNEL_MIX, "figure"),
    Input(ids.COMPARE_A, "value"), Input(ids.COMPARE_B, "value"), prevent_initial_call=True,
)
@describes_figures  # the chart summaries and "view as table" follow the figures (issue 16)
def show_pair(a, b):
    """Redraw KPIs, summary, effect sizes and mixes for the chosen pair."""
    services = get_services()
    return _views(services, *parse_pair(a, b, services.analysis().k))


@callback(Output(ids.COMPARE_DISTRIBUTION, "figure"), Input(ids.COMPARE_FEATURE, "value"),
          Input(ids.COMPARE_A, "value"), Input(ids.COMPARE_B, "value"), prevent_initial_call=True)
@describes_figures  # the chart summaries and "view as table" follow the figures (issue 16)
def show_distribution(feature, a, b):
    """Overlaid histograms of the chosen feature for A and B."""
    services = get_services()
    a_seg, b_seg = parse_pair(a, b, services.analysis().k)
    return overlay_distribution(services.analysis().frame, feature, a_seg, b_seg, services.segment_names())


@callback(Output(ids.COMPARE_A, "value"), Output(ids.COMPARE_B, "value"), Input(ids.COMPARE_SWAP, "n_clicks"),
          State(ids.COMPARE_A, "value"), State(ids.COMPARE_B, "value"), prevent_initial_call=True)
def swap(_n, a, b):
    """Exchange A and B."""
    return b, a


# Keep ?a=&b= in the address bar in step with the dropdowns (replaceState: no page re-render).
clientside_callback(
    """
    function(a, b) {
        if (a === null || a === undefined || b === null || b === undefined
                || !/\\/compare\\/?$/.test(window.location.pathname)) {
            return window.dash_clientside.no_update;
        }
        const params = new URLSearchParams(window.location.search);
        params.set('a', String(a));
        params.set('b', String(b));
        window.history.replaceState(window.history.state, '', window.location.pathname + '?' + params.toString());
        return params.toString();
    }
    """,
    Output(ids.COMPARE_URL_SYNC, "data"), Input(ids.COMPARE_A, "value"), Input(ids.COMPARE_B, "value"),
)
