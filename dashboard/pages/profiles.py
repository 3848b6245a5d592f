"""Segment profiles (/profiles): z-scores, distributions, product/channel mix, campaigns, economics, rename."""
import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, callback, clientside_callback, dcc, html

from core.insight.profiles import LIFT_THRESHOLD, PROFILE_COLUMNS, own_names
from core.versions.registry import RegistryError
from dashboard import ids
from dashboard.components import (
    as_actor, chart_text, describes_figures, empty_state, graph, graph_card, may, model_unavailable, page_header, permission_note, segment_options,
    table,
)
from dashboard.figures.profiles import (
    CATEGORY_LABELS, campaigns_figure, distribution_figure, economics_assumptions, economics_table, feature_label,
    mix_figure, most_different, recommendations, zscore_heatmap,
)
from dashboard.services import get_services
from dashboard.theme import segment_colour

dash.register_page(__name__, path="/profiles", name="Profiles", order=1, title="SegmentLens · Profiles")

_DEFAULT_FEATURE = "Total_Spending"


def parse_segment(value, k: int, default: int = 0) -> int:
    """A segment number from a URL/dropdown value; anything invalid falls back to ``default``."""
    try:
        segment = int(str(value).strip())
    except (TypeError, ValueError):
        return default
    return segment if 0 <= segment < k else default


# (column, label, kind): "count" a whole number, "money" no decimals, "share" the share of the segment above 0.
_FACTS = [
    ("Age", "Typical age", "count"), ("Income", "Typical income", "money"),
    ("Total_Spending", "Typical spend, 2 years", "money"), ("Total_Purchases", "Purchases, 2 years", "count"),
    ("NumWebVisitsMonth", "Web visits a month", "count"), ("Recency", "Days since last purchase", "count"),
    ("Total_Children", "Have children at home", "share"), ("Campaigns_Accepted", "Accepted a campaign", "share"),
]


def segment_facts(frame, seg: int, names: dict | None = None) -> list[tuple[str, str]]:
    """The selected segment's typical member in numbers people read: counts as whole numbers (medians),
    money without decimals, and yes/no-like counts as the share of the segment that has any.

    ``names`` (canonical column -> the user's column, core.insight.profiles.own_names) labels a fact read from a
    customer table's own column by that column's name."""
    names = names or {}
    members = frame[frame["segment"] == seg]
    out = []
    if not len(members):
        return out
    for column, label, kind in _FACTS:
        if column not in members:
            continue
        values = members[column].dropna()
        if not len(values):
            continue
        label = names.get(column, label)
        if kind == "share":
            out.append((label, f"{float((values > 0).mean()):.0%}"))
        else:
            out.append((label, f"{round(float(values.median())):,}"))
    if "Monetary" in members:  # a transaction log's customers: spend and orders over the log's dates
        words = {"Typical spend, 2 years": "Typical total spend", "Purchases, 2 years": "Orders"}
        out = [(words.get(label, label), value) for label, value in out]
    return out


def _summary(a, names: list[str], seg: int) -> dbc.Card:
    """The selected segment's card: name on its colour, size, description, traits, compare link."""
    persona = a.personas[seg]
    other = most_different(a.zscores, seg)
    link = (dcc.Link(f"Compare with its most different segment, {other} · {names[other]} →",
                     href=f"/compare?a={seg}&b={other}", id=ids.PROFILES_COMPARE_LINK, className="small")
            if other is not None else None)
    return dbc.Card([
        html.Div(className="persona-stripe", style={"backgroundColor": segment_colour(seg)}),
        dbc.CardBody([
            html.H2(names[seg], className="h5 mb-1"),  # h2 under the page's h1: no heading level skipped
            html.Div(f"Segment {seg} · {int(a.sizes.loc[seg, 'n']):,} customers · "
                     f"{float(a.sizes.loc[seg, 'share']):.0%} of all", className="small text-muted mb-2"),
            html.P(persona.description, className="mb-2"),
            html.Div([html.Span(t, className="badge bg-light text-dark border me-1 mb-1") for t in persona.traits]
                     or html.Span("Close to the average customer.", className="small text-muted")),
            html.Dl(sum(([html.Dt(label, className="col-7 col-sm-4 fw-normal text-muted"),
                          html.Dd(value, className="col-5 col-sm-2 mb-0 fw-semibold")]
                         for label, value in segment_facts(a.frame, seg, own_names(a.meta))), []),
                    className="row small mt-2 mb-0", id=ids.PROFILES_FACTS),
            html.Div(_rule(get_services().analyses.rules(), seg), id=ids.PROFILES_RULES, className="mt-2"),
            html.Div(link, className="mt-2"),
        ]),
    ], className="h-100 shadow-sm persona-card")


def _rule(rules, seg: int) -> list:
    """The segment's threshold rule (core.insight.explanation), how faithful it is, and the rule as SQL and pandas."""
    rule = rules.segments[seg]

    def pct(v) -> str:
        return "n/a" if v != v else f"{v:.0%}"
    return [
        html.Div([html.Span("Rule of thumb: ", className="fw-semibold"), rule.text], className="small"),
        html.Div(f"It picks out {pct(rule.fidelity)} of this segment's customers, and {pct(rule.precision)} of the "
                 f"customers it picks are in the segment. All {rules.k} rules together give {pct(rules.fidelity)} of "
                 f"customers their segment; price of explainability {rules.price:.2f} (the rules' segments are "
                 f"{max(rules.price - 1, 0):.0%} less compact than the model's).", className="small text-muted"),
        html.Details([html.Summary("As SQL or a pandas query", className="small"),
                      html.Pre(f"WHERE {rule.sql}", className="small mb-1"), html.Pre(rule.pandas, className="small")],
                     className="mt-1"),
    ]


def segment_products(lift, mix, seg: int, threshold: float) -> list[dict]:
    """The selected segment's product categories, strongest lift first: category, its words, lift, share of the
    segment's spend, and whether it over-indexes (lift >= threshold)."""
    if seg not in lift.index:
        return []
    row = lift.loc[seg]
    out = []
    for category, value in row.items():
        value = float(value)
        if value != value:  # NaN: an empty segment
            continue
        share = float(mix.loc[seg, category]) if seg in mix.index and category in mix.columns else float("nan")
        out.append({"category": str(category), "word": CATEGORY_LABELS.get(category, str(category)),
                    "lift": value, "share": share, "feature": value >= threshold})
    return sorted(out, key=lambda r: -r["lift"])


def _recommendations(a, names: list[str], seg: int):
    """What to feature to the selected segment (its over-indexing categories); the other segments' below."""
    mine = segment_products(a.lift, a.product_mix, seg, LIFT_THRESHOLD)
    featured = [r for r in mine if r["feature"]]
    name = names[seg]
    if featured:
        head = html.Ul([
            html.Li([html.Span("●", style={"color": segment_colour(seg)}, className="me-2"),
                     html.Strong(r["word"].capitalize()),
                     f": {r['share']:.0%} of {name}'s spend, {r['lift']:.1f}× the average customer's share."],
                    className="mb-1")
            for r in featured
        ], className="list-unstyled mb-2")
        intro = html.P(f"Feature these to {name}:", className="mb-1 fw-semibold")
    else:
        strongest = mine[0] if mine else None
        intro = html.P(f"No product category stands out for {name}: no category gets {LIFT_THRESHOLD:.1f}× the "
                       "average share of its spend.", className="mb-1")
        head = (html.P(f"Its relatively strongest category is {strongest['word']} ({strongest['share']:.0%} of its "
                       f"spend, {strongest['lift']:.1f}× the average share).", className="small text-muted mb-2")
                if strongest else None)
    others = [r for r in recommendations(a.lift, names, LIFT_THRESHOLD) if r["segment"] != seg]
    rest = html.Details([
        html.Summary(f"Other segments ({len(others)})", className="small"),
        html.Ul([html.Li([html.Span("●", style={"color": segment_colour(r["segment"])}, className="me-2"), r["text"]],
                         className="small mb-1") for r in others], className="list-unstyled mb-0 mt-1"),
    ]) if others else None
    return html.Div([intro, head, rest], id=ids.PROFILES_RECOMMENDATIONS_SEGMENT)


def _economics(a, names: list[str]):
    """The campaign economics table with its assumption spelled out."""
    econ = a.economics
    if not _has_economics(econ):
        return empty_state("No Response column in this file, so campaign economics cannot be estimated.")
    return html.Div([
        html.P(economics_assumptions(a.frame), className="small text-muted"),
        table(economics_table(econ, names), index=False, class_name="small"),
    ])


def _heatmap_card(figure) -> dbc.Card:
    """The z-score heatmap, scrolling sideways on a phone instead of squeezing 21 columns."""
    chart = graph(ids.PROFILES_HEATMAP, figure=figure,
                  style={"height": f"{figure.layout.height}px", "minWidth": "880px"})
    return dbc.Card([
        dbc.CardHeader(html.H2("How each segment differs from the average customer (z-scores)",
                               className="card-heading")),
        dbc.CardBody([
            html.P("Red: above the average customer; blue: below; in standard deviations. "
                   "The selected segment is outlined.", className="small text-muted mb-1"),
            html.P("Swipe sideways to see every feature.", className="small text-muted mb-1 d-lg-none"),
            html.Div(dcc.Loading(chart, type="circle", delay_show=250), className="overflow-auto"),
            *chart_text(ids.PROFILES_HEATMAP, figure, "How each segment differs from the average customer"),
        ]),
    ], className="mb-3 shadow-sm")


def _views(a, names: list[str], seg: int) -> tuple:
    """Everything that depends on the selected segment and the names."""
    return (
        _summary(a, names, seg),
        zscore_heatmap(a.zscores.rename(columns=own_names(a.meta)), names, highlight=seg),
        mix_figure(a.product_mix, names, what="spend", highlight=seg),
        mix_figure(a.channel_mix, names, what="purchases", highlight=seg),
        campaigns_figure(a.campaigns, names, highlight=seg),
        _economics(a, names),
        _recommendations(a, names, seg),
        segment_options(names),
    )


def layout(segment=None, **_query):
    """The profiles page; ``?segment=i`` selects a segment."""
    try:
        return _layout(segment=segment, **_query)
    except RegistryError as exc:  # the active model cannot be served (core.versions.registry / services.ModelUnavailable)
        return model_unavailable(exc)


def sections(a) -> dict:
    """Which data-dependent sections this version's data has inputs for (issue 30: no empty sections).

    Campaign acceptance needs campaign columns, the product mix and products to feature spend per
    category, the channel mix purchases per channel, campaign economics the last campaign's responses.
    """
    return {"campaigns": bool(len(a.campaigns)), "products": bool(a.product_mix.shape[1]),
            "channels": bool(a.channel_mix.shape[1]), "economics": _has_economics(a.economics)}


def _has_economics(econ) -> bool:
    return not (econ is None or econ.empty or econ["response_rate"].isna().all())


def _shown(present: bool) -> str | None:
    """Kept in the page for its callbacks, hidden when the data lacks its inputs."""
    return None if present else "d-none"


def _rfm_card(rfm, names: list[str]):
    """Segments against the standard RFM groups (models trained on a transaction log; None otherwise)."""
    crosstab = (rfm or {}).get("crosstab") if isinstance(rfm, dict) else None
    if not crosstab or not crosstab.get("rows"):
        return None
    groups = [str(g) for g in crosstab["columns"]]
    rows = []
    for segment, counts in sorted(crosstab["rows"].items(), key=lambda item: int(item[0])):
        seg = int(segment)
        total = max(sum(counts), 1)
        top = groups[max(range(len(counts)), key=lambda j: counts[j])]
        rows.append({"Segment": f"{seg} · {names[seg] if seg < len(names) else f'Segment {seg}'}",
                     **{g: f"{c:,} ({c / total:.0%})" for g, c in zip(groups, counts)}, "Mostly": top})
    return dbc.Card([
        dbc.CardHeader(html.H2("Segments and RFM groups", className="card-heading")),
        dbc.CardBody([
            html.P("Each customer's recency, frequency and monetary value scored in quintiles (1–5) and named "
                   "by the standard RFM groups; each row is a k-means segment, each cell how many of its "
                   "customers (share of the segment) fall in a group.", className="small text-muted"),
            table(pd.DataFrame(rows), index=False),
        ]),
    ], className="mb-3 shadow-sm", id=ids.PROFILES_RFM)


def _layout(segment=None, **_query):
    services = get_services()
    a = services.analysis()
    names = services.segment_names()
    seg = parse_segment(segment, a.k)
    own = own_names(a.meta)
    features = [own.get(c, c) for c in PROFILE_COLUMNS if c in a.frame]  # the user's own column names
    feature = _DEFAULT_FEATURE if _DEFAULT_FEATURE in features else features[0]
    can_rename, why_not = may("rename")
    has = sections(a)
    summary, heatmap, product, channel, campaigns, economics, recs, options, distribution = services.view(
        "profiles", lambda: (*_views(a, names, seg), distribution_figure(a.frame, feature, names, highlight=seg)),
        seg, feature)
    controls = dbc.Card(dbc.CardBody([
        dbc.Label("Segment", html_for=ids.PROFILES_SEGMENT, className="fw-semibold"),
        dcc.Dropdown(id=ids.PROFILES_SEGMENT, options=options, value=seg, clearable=False, className="mb-3"),
        dbc.Label("Rename this segment", html_for=ids.PROFILES_RENAME_INPUT, className="fw-semibold"),
        dbc.InputGroup([
            dbc.Input(id=ids.PROFILES_RENAME_INPUT, value=names[seg], maxLength=60, debounce=False,
                      placeholder="New name", disabled=not can_rename),
            html.Span(dbc.Button("Save", id=ids.PROFILES_RENAME_BTN, color="primary", disabled=not can_rename),
                      title=why_not or None, className="d-flex"),
        ]),
        permission_note(why_not, ids.PROFILES_RENAME_PERMISSION),
        html.Div(id=ids.PROFILES_RENAME_FEEDBACK, className="small mt-1", role="status"),
        html.Div("Saved with the model, so everyone sees the new name.", className="small text-muted"),
        dbc.Button("Download profile tables (CSV)", id=ids.PROFILES_DOWNLOAD_BTN, color="primary",
                   size="sm", className="mt-3"),
        dcc.Download(id=ids.PROFILES_DOWNLOAD),
    ]), className="h-100 shadow-sm")
    feature_dropdown = dcc.Dropdown(
        id=ids.PROFILES_FEATURE, options=[{"label": feature_label(c), "value": c} for c in features],
        value=feature, clearable=False, className="mb-2")
    return html.Div([
        dcc.Store(id=ids.PROFILES_NAMES, data=names),
        dcc.Store(id=ids.PROFILES_URL_SYNC),
        page_header("Profiles", "Segment profiles: what sets each segment apart, what it buys and how it answers "
                    "campaigns.", basis=a.basis),
        dbc.Row([
            dbc.Col(controls, xs=12, md=5, lg=4, className="mb-3"),
            dbc.Col(html.Div(summary, id=ids.PROFILES_SUMMARY, className="h-100"), xs=12, md=7, lg=8,
                    className="mb-3"),
        ]),
        _heatmap_card(heatmap),
        _rfm_card(a.meta.get("rfm"), names),
        dbc.Row([
            dbc.Col(graph_card("Distribution by segment", ids.PROFILES_DISTRIBUTION, height=distribution.layout.height,
                               extra=html.Div([feature_dropdown, html.Div(
                                   "Box: the middle half of the segment; line: median; dashed line: mean; "
                                   "whiskers: up to 1.5 box-lengths.", className="small text-muted")]),
                               figure=distribution), xs=12, lg=6),
            dbc.Col(graph_card("Campaign acceptance (95% confidence intervals)", ids.PROFILES_CAMPAIGNS, height=400,
                               figure=campaigns), xs=12, lg=6, className=_shown(has["campaigns"])),
        ]),
        dbc.Row([
            dbc.Col(graph_card("Product mix: share of spend", ids.PROFILES_PRODUCT_MIX,
                               height=product.layout.height, figure=product), xs=12, lg=6,
                    className=_shown(has["products"])),
            dbc.Col(graph_card("Channel mix: share of purchases", ids.PROFILES_CHANNEL_MIX,
                               height=channel.layout.height, figure=channel), xs=12, lg=6,
                    className=_shown(has["channels"])),
        ]),
        dbc.Row([
            dbc.Col(dbc.Card([dbc.CardHeader(html.Span("Campaign economics if targeted", className="fw-semibold")),
                              dbc.CardBody(economics, id=ids.PROFILES_ECONOMICS)], className="mb-3 shadow-sm"),
                    xs=12, lg=7, className=_shown(has["economics"])),
            dbc.Col(dbc.Card([dbc.CardHeader(html.Span("Products to feature", className="fw-semibold")),
                              dbc.CardBody(recs, id=ids.PROFILES_RECOMMENDATIONS)], className="mb-3 shadow-sm"),
                    xs=12, lg=5, className=_shown(has["products"])),
        ]),
    ])


@callback(
    Output(ids.PROFILES_SUMMARY, "children"), Output(ids.PROFILES_HEATMAP, "figure"),
    Output(ids.PROFILES_PRODUCT_MIX, "figure"), Output(ids.PROFILES_CHANNEL_MIX, "figure"),
    Output(ids.PROFILES_CAMPAIGNS, "figure"), Output(ids.PROFILES_ECONOMICS, "children"),
    Output(ids.PROFILES_RECOMMENDATIONS, "children"), Output(ids.PROFILES_SEGMENT, "options"),
    Input(ids.PROFILES_SEGMENT, "value"), Input(ids.PROFILES_NAMES, "data"),
    prevent_initial_call=True,
)
@describes_figures  # the chart summaries and "view as table" follow the figures (issue 16)
def show_segment(segment, _names):
    """Redraw everything that highlights the selected segment or shows names."""
    services = get_services()
    a = services.analysis()
    return _views(a, services.segment_names(), parse_segment(segment, a.k))


@callback(Output(ids.PROFILES_DISTRIBUTION, "figure"), Input(ids.PROFILES_FEATURE, "value"),
          Input(ids.PROFILES_SEGMENT, "value"), Input(ids.PROFILES_NAMES, "data"), prevent_initial_call=True)
@describes_figures  # the chart summaries and "view as table" follow the figures (issue 16)
def show_distribution(feature, segment, _names):
    """Boxes of the chosen feature per segment."""
    services = get_services()
    a = services.analysis()
    return distribution_figure(a.frame, feature, services.segment_names(), highlight=parse_segment(segment, a.k))


@callback(
    Output(ids.PROFILES_NAMES, "data"), Output(ids.PROFILES_RENAME_FEEDBACK, "children"),
    Output(ids.PROFILES_RENAME_INPUT, "invalid"), Output(ids.PROFILES_RENAME_INPUT, "valid"),
    Input(ids.PROFILES_RENAME_BTN, "n_clicks"), Input(ids.PROFILES_RENAME_INPUT, "n_submit"),
    State(ids.PROFILES_SEGMENT, "value"), State(ids.PROFILES_RENAME_INPUT, "value"),
    prevent_initial_call=True,
)
def rename(_clicks, _submit, segment, name):
    """Save a new name for the selected segment; a refused name is explained beside the input."""
    services = get_services()
    try:
        saved = as_actor(services.rename_segment, parse_segment(segment, services.analysis().k, -1), name)
    except ValueError as exc:
        return dash.no_update, html.Span(f"Not saved: {exc}.", className="text-danger"), True, False
    return (services.segment_names(), html.Span(f"Saved: segment {segment} is now “{saved}”.",
                                                className="text-success"), False, True)


@callback(
    Output(ids.PROFILES_RENAME_INPUT, "value"),
    Output(ids.PROFILES_RENAME_FEEDBACK, "children", allow_duplicate=True),
    Output(ids.PROFILES_RENAME_INPUT, "invalid", allow_duplicate=True),
    Output(ids.PROFILES_RENAME_INPUT, "valid", allow_duplicate=True),
    Input(ids.PROFILES_SEGMENT, "value"), prevent_initial_call=True,
)
def fill_rename(segment):
    """Offer the selected segment's current name for editing."""
    services = get_services()
    return services.segment_names()[parse_segment(segment, services.analysis().k)], None, False, False


@callback(Output(ids.PROFILES_DOWNLOAD, "data"), Input(ids.PROFILES_DOWNLOAD_BTN, "n_clicks"),
          prevent_initial_call=True)
def download(_n):
    """Every profile table as one spreadsheet-safe CSV."""
    return dict(content=get_services().profiles_csv(), filename="segment_profiles.csv", type="text/csv")


# Write the selection into the address bar without a round trip or a page re-render: replaceState
# does not notify dcc.Location, so Dash's page router does not rebuild the layout on every pick.
clientside_callback(
    """
    function(segment) {
        if (segment === null || segment === undefined || !/\\/profiles\\/?$/.test(window.location.pathname)) {
            return window.dash_clientside.no_update;
        }
        const params = new URLSearchParams(window.location.search);
        params.set('segment', String(segment));
        window.history.replaceState(window.history.state, '', window.location.pathname + '?' + params.toString());
        return String(segment);
    }
    """,
    Output(ids.PROFILES_URL_SYNC, "data"), Input(ids.PROFILES_SEGMENT, "value"),
)
