"""PCA map (/explorer): customers on the principal axes by segment, filters, box/lasso selection and its CSV."""
import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, dcc, html

from dashboard import ids
from dashboard.components import describes_figures, graph_card, page_header
from dashboard.figures.explorer import (
    map_view, pca_map_figure, range_bounds, selected_positions, selection_summary,
)
from dashboard.services import get_services
from dashboard.theme import segment_colour

dash.register_page(__name__, path="/explorer", name="Explorer", order=3, title="SegmentLens · Explorer")

_AGE_STEP, _INCOME_STEP = 1, 1000
_MAP_HEIGHT = 600


def _bounds(frame) -> dict:
    """Slider bounds of the filters, from the data."""
    return {"age_bounds": range_bounds(frame["Age"], _AGE_STEP),
            "income_bounds": range_bounds(frame["Income"], _INCOME_STEP)}


def _money(v: float) -> str:
    """52000 -> '52K' for slider marks."""
    return f"{v / 1000:,.0f}K" if abs(v) >= 1000 else f"{v:,.0f}"


def _range_slider(slider_id: str, lo: float, hi: float, step: float, fmt) -> dcc.RangeSlider:
    """A range filter over [lo, hi] with a few readable marks."""
    # Three marks: five overlapped in a quarter-width column ("81K121K161K").
    marks = {int(lo + (hi - lo) * i / 2): fmt(lo + (hi - lo) * i / 2) for i in range(3)}
    return dcc.RangeSlider(id=slider_id, min=int(lo), max=int(hi), step=step, value=[int(lo), int(hi)], marks=marks,
                           allowCross=False, tooltip={"placement": "bottom", "always_visible": False})


def _filters(frame) -> dbc.Card:
    """Education, marital status, age and income filters."""
    b = _bounds(frame)
    education = sorted(frame["Education"].dropna().astype(str).unique())
    marital = sorted(frame["Marital_Status"].dropna().astype(str).unique())
    label = "form-label small fw-semibold mb-1"
    return dbc.Card(dbc.CardBody(dbc.Row([
        dbc.Col([html.Label("Education", htmlFor=ids.EXPLORER_EDUCATION, className=label),
                 dcc.Dropdown(id=ids.EXPLORER_EDUCATION, options=education, multi=True, value=[],
                              placeholder="All education levels")], md=6, xl=3, className="mb-2"),
        dbc.Col([html.Label("Marital status", htmlFor=ids.EXPLORER_MARITAL, className=label),
                 dcc.Dropdown(id=ids.EXPLORER_MARITAL, options=marital, multi=True, value=[],
                              placeholder="All marital statuses")], md=6, xl=3, className="mb-2"),
        dbc.Col([html.Label("Age", htmlFor=ids.EXPLORER_AGE, className=label),
                 _range_slider(ids.EXPLORER_AGE, *b["age_bounds"], _AGE_STEP, lambda v: f"{v:.0f}")],
                md=6, xl=3, className="mb-2"),
        dbc.Col([html.Label("Yearly income", htmlFor=ids.EXPLORER_INCOME, className=label),
                 _range_slider(ids.EXPLORER_INCOME, *b["income_bounds"], _INCOME_STEP, _money)],
                md=6, xl=3, className="mb-2"),
    ], className="g-3")), className="shadow-sm mb-3")


def layout(**_query):
    """The explorer page."""
    a = get_services().analysis()
    controls = html.Div([
        dbc.RadioItems(id=ids.EXPLORER_DIMENSIONS, options=[{"label": "2D", "value": 2}, {"label": "3D", "value": 3}],
                       value=2, inline=True, className="me-3"),
        dbc.Checklist(id=ids.EXPLORER_LOADINGS, options=[{"label": "Feature arrows", "value": "show"}],
                      value=["show"], switch=True, inline=True, className="me-3"),
        dbc.Button("Reset filters", id=ids.EXPLORER_RESET, size="sm", color="secondary", outline=True),
    ], className="d-flex flex-wrap align-items-center gap-2 mb-2")
    count = html.Div(id=ids.EXPLORER_COUNT, className="small text-muted mb-1", **{"aria-live": "polite"})
    side = dbc.Card([
        dbc.CardHeader(html.Span("Selected customers", className="fw-semibold")),
        dbc.CardBody([
            html.Div(id=ids.EXPLORER_SELECTION, **{"aria-live": "polite"}),
            dbc.Button("Download selection (CSV)", id=ids.EXPLORER_DOWNLOAD_BTN, color="primary", outline=True,
                       size="sm", className="mt-3", disabled=True),
            html.Div("ID, segment, confidence and the model's features only; no other personal fields.",
                     id=ids.EXPLORER_SELECTION_HINT, className="small text-muted mt-1"),
            dcc.Download(id=ids.EXPLORER_DOWNLOAD),
        ]),
    ], className="shadow-sm mb-3")
    return html.Div([
        page_header("Explorer", f"Every customer on the model's two or three main axes (PCA of the {len(a.features)} "
                                "features), coloured by segment. Crosses mark segment centres; arrows show which "
                                "way each feature grows."),
        _filters(a.frame),
        dbc.Row([
            dbc.Col(graph_card("Customer map", ids.EXPLORER_MAP, height=_MAP_HEIGHT, extra=html.Div([controls, count]),
                               config={"scrollZoom": True}), lg=8, xl=9),
            dbc.Col(side, lg=4, xl=3),
        ]),
    ])


@callback(Output(ids.EXPLORER_MAP, "figure"), Output(ids.EXPLORER_COUNT, "children"),
          Output(ids.EXPLORER_MAP, "selectedData"),
          Input(ids.EXPLORER_DIMENSIONS, "value"), Input(ids.EXPLORER_LOADINGS, "value"),
          Input(ids.EXPLORER_EDUCATION, "value"), Input(ids.EXPLORER_MARITAL, "value"),
          Input(ids.EXPLORER_AGE, "value"), Input(ids.EXPLORER_INCOME, "value"))
@describes_figures  # the chart summaries and "view as table" follow the figures (issue 16)
def update_map(dims, loadings, education, marital, age, income):
    """Filter, downsample per segment and draw; a new view clears the old selection."""
    services = get_services()
    a = services.analysis()
    dims = 3 if dims == 3 else 2

    def build():
        view = map_view(a.frame, a.labels, dims=dims, seed=int(a.meta.get("seed", 0)), education=education,
                        marital=marital, age=age, income=income, **_bounds(a.frame))
        revision = f"{a.version}:{dims}:{education}:{marital}:{age}:{income}"
        fig = pca_map_figure(a.coords, a.labels, a.frame, view.positions, services.segment_names(),
                             a.centroid_coords, a.projection.explained_variance_ratio,
                             loadings=a.projection.loadings if loadings else None, features=a.features, dims=dims,
                             revision=revision, height=_MAP_HEIGHT)
        return fig, view.caption()
    fig, caption = services.view("explorer-map", build, dims, bool(loadings), *(
        tuple(v) if isinstance(v, list) else v for v in (education, marital, age, income)))
    return fig, caption, None


@callback(Output(ids.EXPLORER_EDUCATION, "value"), Output(ids.EXPLORER_MARITAL, "value"),
          Output(ids.EXPLORER_AGE, "value"), Output(ids.EXPLORER_INCOME, "value"),
          Input(ids.EXPLORER_RESET, "n_clicks"), prevent_initial_call=True)
def reset_filters(_n):
    """Every filter back to 'all customers'."""
    b = _bounds(get_services().analysis().frame)
    return [], [], [int(v) for v in b["age_bounds"]], [int(v) for v in b["income_bounds"]]


@callback(Output(ids.EXPLORER_SELECTION, "children"), Output(ids.EXPLORER_DOWNLOAD_BTN, "disabled"),
          Input(ids.EXPLORER_MAP, "selectedData"), Input(ids.EXPLORER_DIMENSIONS, "value"))
def summarise_selection(selected, dims):
    """Count, segment shares and mean income/spend/age of the customers in the box or lasso."""
    a = get_services().analysis()
    positions = selected_positions(selected, len(a.frame))
    if len(positions) == 0:
        hint = ("Switch to 2D to select customers with a box or lasso." if dims == 3 else
                "Draw a lasso or box around customers on the map (toolbar, top right) to summarise them here.")
        return html.P(hint, className="small text-muted mb-0"), True
    s = selection_summary(a.frame, a.labels, positions, get_services().segment_names())
    overall = a.frame[["Income", "Total_Spending", "Age"]].mean()
    rows = [html.Tr([html.Td(html.Span("●", style={"color": segment_colour(r.segment)})),
                     html.Td(r.name, className="small"), html.Td(f"{r.customers:,}", className="text-end"),
                     html.Td(f"{r.share:.0%}", className="text-end")])
            for r in s["per_segment"].itertuples()]
    means = [("Mean income", s["means"]["Income"], overall["Income"], "{:,.0f}"),
             ("Mean spend (2 years)", s["means"]["Total_Spending"], overall["Total_Spending"], "{:,.0f}"),
             ("Mean age", s["means"]["Age"], overall["Age"], "{:.0f}")]
    return html.Div([
        html.Div([html.Span(f"{s['count']:,}", className="fs-4 fw-semibold kpi-value me-1"),
                  html.Span("customers selected", className="text-muted")]),
        dbc.Table(html.Tbody(rows), size="sm", borderless=True, className="mb-2 mt-1"),
        html.Ul([html.Li([html.Span(f"{label}: "), html.Strong(fmt.format(v)),
                          html.Span(f" (all customers {fmt.format(ref)})", className="text-muted small")])
                 for label, v, ref, fmt in means], className="list-unstyled mb-0 small"),
    ]), False


@callback(Output(ids.EXPLORER_DOWNLOAD, "data"), Input(ids.EXPLORER_DOWNLOAD_BTN, "n_clicks"),
          State(ids.EXPLORER_MAP, "selectedData"), prevent_initial_call=True)
def download_selection(_n, selected):
    """The selected customers as spreadsheet-safe CSV."""
    services = get_services()
    positions = selected_positions(selected, len(services.analysis().frame))
    if len(positions) == 0:
        raise dash.exceptions.PreventUpdate
    return dict(content=services.selection_csv(positions), filename="selected_customers.csv", type="text/csv")
