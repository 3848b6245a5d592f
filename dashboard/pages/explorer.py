"""PCA map (/explorer): customers on the principal axes by segment, filters, box/lasso selection and its CSV."""
import dash
import dash_bootstrap_components as dbc
import numpy as np
import pandas as pd
from dash import Input, Output, State, callback, dcc, html

from core.insight.profiles import own_names
from core.reading.schema import log_scale_note
from dashboard import ids
from dashboard.components import describes_figures, graph_card, may, page_header
from dashboard.figures.explorer import (
    map_view, pca_map_figure, range_bounds, selected_positions, selection_summary,
)
from dashboard.services import get_services
from dashboard.theme import segment_colour

dash.register_page(__name__, path="/explorer", name="Explorer", order=3, title="SegmentLens · Explorer")

_AGE_STEP, _INCOME_STEP = 1, 1000
_MAP_HEIGHT = 600
# Range filters of data without Age/Income (a transaction log's customers): its own columns, in this order.
_OTHER_RANGES = ("Recency", "Monetary", "Frequency", "Tenure")
_LABELS = {"Age": "Age", "Income": "Yearly income", "Recency": "Days since last purchase",
           "Monetary": "Total spend", "Frequency": "Orders", "Tenure": "Days since first purchase"}


def _range_columns(frame, features=()) -> tuple:
    """The two columns the range filters apply to: Age and Income on customer files, else the data's own."""
    if "Age" in frame and "Income" in frame:
        return ("Age", "Income")
    numeric = [c for c in (*_OTHER_RANGES, *(f[:-4] if f.endswith("_log") else f for f in features))
               if c in frame and c != "ID" and pd.api.types.is_numeric_dtype(frame[c])]
    picked = list(dict.fromkeys(numeric))[:2]
    return tuple(picked + [None] * (2 - len(picked)))


def _step(frame, column) -> float:
    """Slider step: a year of age, 1,000 of income, else about a hundredth of the range (a power of ten)."""
    if column == "Age":
        return _AGE_STEP
    if column == "Income":
        return _INCOME_STEP
    v = pd.to_numeric(frame[column], errors="coerce").dropna() if column in frame else pd.Series(dtype=float)
    span = float(v.max() - v.min()) if len(v) else 0.0
    return float(10 ** max(0, int(np.floor(np.log10(span / 100))))) if span > 100 else 1.0


def _bounds(frame, features=()) -> dict:
    """Slider bounds of the filters and the columns they filter, from the data."""
    age_col, income_col = _range_columns(frame, features)
    return {"age_bounds": range_bounds(frame[age_col], _step(frame, age_col)) if age_col else (0.0, 1.0),
            "income_bounds": range_bounds(frame[income_col], _step(frame, income_col)) if income_col else (0.0, 1.0),
            "range_columns": (age_col, income_col)}


def _money(v: float) -> str:
    """52000 -> '52K' for slider marks."""
    return f"{v / 1000:,.0f}K" if abs(v) >= 1000 else f"{v:,.0f}"


def _range_slider(slider_id: str, lo: float, hi: float, step: float, fmt) -> dcc.RangeSlider:
    """A range filter over [lo, hi] with a few readable marks."""
    # Three marks: five overlapped in a quarter-width column ("81K121K161K").
    marks = {int(lo + (hi - lo) * i / 2): fmt(lo + (hi - lo) * i / 2) for i in range(3)}
    return dcc.RangeSlider(id=slider_id, min=int(lo), max=int(hi), step=step, value=[int(lo), int(hi)], marks=marks,
                           allowCross=False, tooltip={"placement": "bottom", "always_visible": False})


def _filters(frame, features=(), own: dict | None = None) -> dbc.Card:
    """Education, marital status, age and income filters (or the data's own columns when it has other ones).

    ``own``: canonical column -> the user's column name (core.insight.profiles.own_names), which labels a filter."""
    own = own or {}
    b = _bounds(frame, features)
    age_col, income_col = b["range_columns"]
    label = "form-label small fw-semibold mb-1"
    hidden = {"display": "none"}

    def choice(column, control_id, text, placeholder):
        options = sorted(frame[column].dropna().astype(str).unique()) if column in frame else []
        return dbc.Col([html.Label(text, htmlFor=control_id, className=label),
                        dcc.Dropdown(id=control_id, options=options, multi=True, value=[], placeholder=placeholder)],
                       md=6, xl=3, className="mb-2", style=None if column in frame else hidden)

    def ranged(column, control_id, bounds, fmt):
        if column is None:  # the id stays for the callbacks; nothing to filter on
            return dbc.Col(_range_slider(control_id, *bounds, 1, fmt), style=hidden)
        text = own.get(column) or _LABELS.get(column, column.replace("_", " "))
        return dbc.Col([html.Label(text, htmlFor=control_id, className=label),
                        _range_slider(control_id, *bounds, _step(frame, column), fmt)], md=6, xl=3, className="mb-2")

    money = _money if income_col in ("Income", "Monetary") else (lambda v: f"{v:,.0f}")
    columns = [choice("Education", ids.EXPLORER_EDUCATION, "Education", "All education levels"),
               choice("Marital_Status", ids.EXPLORER_MARITAL, "Marital status", "All marital statuses"),
               ranged(age_col, ids.EXPLORER_AGE, b["age_bounds"], lambda v: f"{v:,.0f}"),
               ranged(income_col, ids.EXPLORER_INCOME, b["income_bounds"], money)]
    missing = [name for name, col in (("education", "Education"), ("marital status", "Marital_Status"))
               if col not in frame]
    note = ([html.P(f"No {' or '.join(missing)} in this data: "
                    f"{'that filter is' if len(missing) == 1 else 'those filters are'} not shown.",
                    className="small text-muted mb-0")] if missing else [])
    return dbc.Card(dbc.CardBody([dbc.Row(columns, className="g-3"), *note]), className="shadow-sm mb-3")


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
                                f"way each feature grows. {log_scale_note(a.features)}".rstrip(), basis=a.basis),
        _filters(a.frame, a.features, own_names(a.meta)),
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
                        marital=marital, age=age, income=income, **_bounds(a.frame, a.features))
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
    a = get_services().analysis()
    b = _bounds(a.frame, a.features)
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
    wanted = [("Income", "Mean income", "{:,.0f}"), ("Total_Spending", "Mean spend (2 years)", "{:,.0f}"),
              ("Age", "Mean age", "{:.0f}")]
    if "Monetary" in a.frame or not any(c in a.frame for c, _, _ in wanted):  # a transaction log's customers: RFM
        wanted = [("Monetary", "Mean total spend", "{:,.0f}"), ("Frequency", "Mean orders", "{:,.1f}"),
                  ("Recency", "Mean days since last purchase", "{:,.0f}")]
    wanted = [w for w in wanted if w[0] in a.frame]
    s = selection_summary(a.frame, a.labels, positions, get_services().segment_names(),
                          columns=tuple(c for c, _, _ in wanted))
    overall = a.frame[[c for c, _, _ in wanted]].mean()
    rows = [html.Tr([html.Td(html.Span("●", style={"color": segment_colour(r.segment)})),
                     html.Td(r.name, className="small"), html.Td(f"{r.customers:,}", className="text-end"),
                     html.Td(f"{r.share:.0%}", className="text-end")])
            for r in s["per_segment"].itertuples()]
    means = [(label, s["means"][c], overall[c], fmt) for c, label, fmt in wanted]
    return html.Div([
        html.Div([html.Span(f"{s['count']:,}", className="fs-4 fw-semibold kpi-value me-1"),
                  html.Span("customers selected", className="text-muted")]),
        dbc.Table(html.Tbody(rows), size="sm", borderless=True, className="mb-2 mt-1"),
        html.Ul([html.Li([html.Span(f"{label}: "), html.Strong(fmt.format(v)),
                          html.Span(f" (all customers {fmt.format(ref)})", className="text-muted small")])
                 for label, v, ref, fmt in means], className="list-unstyled mb-0 small"),
    ]), not may("export_customers")[0]  # one row per customer: analysts and admins (the server checks too)


@callback(Output(ids.EXPLORER_DOWNLOAD, "data"), Input(ids.EXPLORER_DOWNLOAD_BTN, "n_clicks"),
          State(ids.EXPLORER_MAP, "selectedData"), prevent_initial_call=True)
def download_selection(_n, selected):
    """The selected customers as spreadsheet-safe CSV."""
    services = get_services()
    positions = selected_positions(selected, len(services.analysis().frame))
    if len(positions) == 0:
        raise dash.exceptions.PreventUpdate
    return dict(content=services.selection_csv(positions), filename="selected_customers.csv", type="text/csv")
