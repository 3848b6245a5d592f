"""Explore data (/eda): distributions with cleaning cut-offs, missing values, correlations, enrolment, cleaned rows."""
import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, callback, dcc, html

from core.insight.eda import explore, summary
from core.reading.loading import DataFileError
from core.versions.registry import RegistryError
from dashboard import ids
from dashboard.components import describes_figures, empty_state, graph_card, model_unavailable, page_header, table
from dashboard.figures.eda import (
    column_options,
    correlation_figure,
    distribution_figure,
    enrolment_figure,
    missing_figure,
    outlier_text,
    rule_label,
    rule_rows_table,
)
from dashboard.services import get_services

dash.register_page(__name__, path="/eda", name="Explore data", order=6.5, title="SegmentLens · Explore data")

DEFAULT_COLUMN = "Income"
PAGE_SIZE = 10


def _summary() -> dict:
    """Aggregates of the active model's data file, built once per model version and data.

    A version trained through a column mapping (a transaction log, another customer table) is explored
    on its customers as it derived them (one row per customer: RFM, tenure, ...); the first purchase
    stands for the enrolment date.
    """
    services = get_services()
    a = services.analysis()
    if a.sampled:  # a table larger than its version's sample: explored on the sample, never read whole
        return services.view("eda-summary", lambda: _mapped_summary(services, a, None))
    path = services.data_path_for(a.meta)
    if not _mapped(services, a.version):
        return services.view("eda-summary", lambda: summary(explore(path, name=a.source)))
    return services.view("eda-summary", lambda: _mapped_summary(services, a, path))


def _mapped(services, version: str) -> bool:
    """True when the version was trained through a column mapping (not on the canonical file)."""
    try:
        saved = services.registry.artifact_json(version, "mapping")
    except (RegistryError, KeyError, ValueError):
        return False
    return bool(saved) and saved.get("input") not in (None, "canonical")


def _mapped_summary(services, a, path) -> dict:
    """:func:`core.insight.eda.summary` of the customers a mapped version derives from its file (its sample: ``path`` None)."""
    from core.insight.eda import Exploration
    from core.insight.analysis import prepare_model_data

    prepared = (prepare_model_data(services.registry, a.version, path, a.source) if path is not None
                else services.analyses.customers_of(a.version, a.meta))
    frame = prepared.frame
    if "Dt_Customer" not in frame and "First_purchase" in frame:
        frame = frame.assign(Dt_Customer=pd.to_datetime(frame["First_purchase"], errors="coerce"))
    numeric = frame.drop(columns=[c for c in ("First_purchase", "Last_purchase") if c in frame])
    rows = pd.DataFrame({"rule": pd.Series(dtype=str), "action": pd.Series(dtype=str),
                         "ID": pd.Series(dtype=object), "line": pd.Series(dtype=int)})
    exploration = Exploration(numeric, frame, prepared.report, prepared.info, rows, {}, prepared.fingerprint,
                              prepared.source)
    out = summary(exploration, columns=[c for c in a.features if c in frame])
    # One row per derived customer: the empty-cell shares are of customers; the file's rows are told apart.
    out.update(mapped=True, file_rows=out["rows_read"], rows_read=len(frame), rows_used=len(frame),
               sample=a.basis if path is None else None)
    return out


def layout(**_query):
    """The explore-data page."""
    header = page_header("Explore data", "The customer file behind the active model: every column's distribution "
                                         "with the cleaning rules' cut-offs, empty cells, correlations, enrolment "
                                         "over time, and what cleaning did to which row.")
    try:
        s = _summary()
    except DataFileError as exc:
        return html.Div([header, empty_state("The model's data file cannot be read.", str(exc))])
    except RegistryError as exc:  # no model can be served (services.ModelUnavailable is one)
        return html.Div([header, model_unavailable(exc)])
    options = column_options(s["histograms"])
    default = next((c for c in (DEFAULT_COLUMN, "Monetary") if c in s["histograms"]), None)
    column = default or (options[0]["value"] if options else None)
    rules = [{"rule": rule_label(r["name"]), "action": r["action"], "rows": r["count"], "why": r["description"]}
             for r in s["rules"] if r["count"]]
    dropped = s["rows_read"] - s["rows_used"]
    facts = html.P([html.Strong("Data: "), s["source"],
                    f" · {s['rows_read']:,} rows read, {s['rows_used']:,} used after cleaning "
                    f"({dropped:,} dropped). Distributions show the file as it was read, before cleaning; "
                    "dashed lines mark where a cleaning rule cuts."] if not s.get("mapped") else
                   [html.Strong("Data: "), s["source"],
                    f" · {s.get('file_rows', s['rows_read']):,} rows read, {s['rows_used']:,} customers derived "
                    "from them. "
                    "Distributions and correlations are of the customers as the model sees them "
                    "(one row each); enrolment is the first purchase."] if not s.get("sample") else
                   [html.Strong("Data: "), s["source"],
                    f" · a stratified sample of {s['sample']['rows']:,} of the {s['sample']['of_rows']:,} customers "
                    "kept with the model (the file itself is not read here). Distributions and correlations are of "
                    "the sampled customers after cleaning; the cleaning rules' counts are the whole file's."],
                   className="small", id=ids.EDA_SUMMARY)
    picker = dcc.Dropdown(id=ids.EDA_COLUMN, options=options, value=column, clearable=False, className="mb-2")
    missing = missing_figure(s["missing"], s["rows_read"])
    rows = rule_rows_table(s["rule_rows"])
    pages = max(1, -(-len(rows) // PAGE_SIZE))
    rows_table = html.Div([
        html.Div(_rows_page(rows, 1), id=ids.EDA_RULE_ROWS),
        dbc.Pagination(id=ids.EDA_ROWS_PAGE, max_value=pages, active_page=1, fully_expanded=False,
                       previous_next=True, size="sm", className="mt-2 mb-0 flex-wrap",
                       style=None if pages > 1 else {"display": "none"}),
    ])
    return html.Div([
        header,
        facts,
        dbc.Row([
            dbc.Col(graph_card("Distribution of a column", ids.EDA_DISTRIBUTION, height=340,
                               extra=html.Div([picker, html.P(id=ids.EDA_OUTLIERS, className="small text-muted mb-1")]),
                               figure=distribution_figure(column, s["histograms"].get(column),
                                                          s["cutoffs"].get(column))), lg=7),
            dbc.Col(graph_card("Empty cells per column", ids.EDA_MISSING, height=missing.layout.height, figure=missing), lg=5),
        ]),
        graph_card("Correlations between the model's features (after cleaning)", ids.EDA_CORRELATION, height=560,
                   figure=correlation_figure(s["correlations"])),
        graph_card("Customers enrolled per month", ids.EDA_ENROLMENT, height=300,
                   figure=enrolment_figure(s["enrolments"])),
        dbc.Card([
            dbc.CardHeader(html.Span("What cleaning did, row by row", className="fw-semibold")),
            dbc.CardBody([
                table(pd.DataFrame(rules), index=False) if rules else empty_state("No row needed cleaning."),
                html.P("Each customer a rule dropped or changed, by customer ID and line of the file "
                       "(no other field is shown).", className="small text-muted mt-3 mb-2"),
                # The table's ids stay in the layout (its paging callback) when no row was touched.
                rows_table if rows else html.Div([empty_state("No row was dropped or changed."),
                                                  html.Div(rows_table, style={"display": "none"})]),
            ], id=ids.EDA_RULES),
        ], className="mb-3 shadow-sm"),
    ])


@callback(Output(ids.EDA_DISTRIBUTION, "figure"), Output(ids.EDA_OUTLIERS, "children"),
          Input(ids.EDA_COLUMN, "value"))
@describes_figures  # the chart summaries and "view as table" follow the figures (issue 16)
def show_column(column):
    """Distribution of the chosen column with its cut-offs, and its outliers in one sentence."""
    s = _summary()
    if column not in s["histograms"]:
        column = next((c for c in (DEFAULT_COLUMN, "Monetary") if c in s["histograms"]), column)
    return (distribution_figure(column, s["histograms"].get(column), s["cutoffs"].get(column)),
            outlier_text(column, s["outliers"]))


def _rows_page(rows: list[dict], page: int) -> dbc.Table:
    """One page of the rule rows as a compact table."""
    start = (max(int(page or 1), 1) - 1) * PAGE_SIZE
    part = pd.DataFrame(rows[start:start + PAGE_SIZE], columns=["rule", "action", "id", "line"])
    return table(part.set_axis(["Rule", "What happened", "Customer ID", "File line"], axis=1), index=False,
                 float_format="{:,.0f}")


@callback(Output(ids.EDA_RULE_ROWS, "children"), Input(ids.EDA_ROWS_PAGE, "active_page"),
          prevent_initial_call=True)
def show_rows(page):
    """Another page of the rows cleaning dropped or changed."""
    return _rows_page(rule_rows_table(_summary()["rule_rows"]), page)
