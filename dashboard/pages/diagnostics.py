"""Choosing k (/diagnostics): metrics against k with the recommendation, silhouette plot, sweep as a background job."""
import sys
import time
import traceback

import dash
import dash_bootstrap_components as dbc
import pandas as pd
from dash import Input, Output, State, callback, dcc, html

from core.reading.schema import log_scale_note
from dashboard import ids
from dashboard.auth import job_caller, permission
from dashboard.components import describes_figures, graph_card, page_header, table
from dashboard.figures.algorithms import (agreement_figure, can_chart_agreement, comparison_notes, comparison_table,
                                         version_note)
from dashboard.figures.diagnostics import metrics_figure, metrics_table, recommendation_text, silhouette_figure
from dashboard.figures.ktree import ktree_figure, node_profile_rows
from dashboard.services import Services, get_services

dash.register_page(__name__, path="/diagnostics", name="Diagnostics", order=4, title="SegmentLens · Diagnostics")

K_LOW, K_HIGH = 2, 15
DEFAULT_RANGE = (2, 10)
# Up to this many customers the default sweep is computed while the page is built (about a second,
# then cached); beyond it the background job computes it with a progress bar instead of blocking the page.
LAYOUT_SWEEP_MAX = 5_000
METRICS_HEIGHT = 560
SLIDER_HEIGHT = 34  # px the range slider takes once drawn (its marks included), at every width


def _chart(title: str, graph_id: str, *, height: int, **kwargs):
    """A graph_card that keeps its chart's height while Plotly's script is still loading.

    dcc.Graph draws nothing until its script has arrived, so without this every chart card starts a few hundred
    px short and the page below jumps down by the sum when the charts appear (1,500 px at 1400 px wide): the
    Algorithms button, last on the page, moved out from under a pointer (or a test's click) that had aimed at it.
    assets/segmentlens.css gives the chart's place ``--chart-height`` as its minimum height (and a chart that
    scrolls sideways on a phone ``--chart-min-width``, so that its scroll bar is there from the start too).
    """
    reserve = {"--chart-height": f"{height}px"}
    if kwargs.get("min_width"):
        reserve["--chart-min-width"] = f"{kwargs['min_width']}px"
    return html.Div(graph_card(title, graph_id, height=height, **kwargs), className="chart-reserve", style=reserve)


def _silhouette_note(a) -> str:
    """The silhouette plot's axis title: on how many customers it was computed."""
    n, shown = a.n_customers, len(a.silhouette_rows)
    how = f"all {n:,} customers" if shown >= n else f"sample of {shown:,} of {n:,}"
    return f"Silhouette ({how})"


def layout(**_query):
    """The diagnostics page."""
    services = get_services()
    a = services.analysis()
    names = services.segment_names()
    lo, hi = DEFAULT_RANGE
    hi = min(hi, len(a.frame) - 1)
    sweep = services.sweep(lo, hi).to_dict() if len(a.frame) <= LAYOUT_SWEEP_MAX else None
    total = hi - lo + 1
    view, silhouette = services.view("diagnostics", lambda: (
        _sweep_view(sweep, a.k),
        silhouette_figure(a.silhouette, a.labels[a.silhouette_rows], names, note=_silhouette_note(a))),
        lo, hi, sweep is not None)
    controls = dbc.Card(dbc.CardBody([
        dbc.Row([
            dbc.Col([html.Label("Range of k to compare", htmlFor=ids.DIAG_K_RANGE,
                                className="form-label small fw-semibold"),
                     # Its place kept while the slider's script loads (see _chart).
                     html.Div(dcc.RangeSlider(id=ids.DIAG_K_RANGE, min=K_LOW, max=K_HIGH, step=1, value=[lo, hi],
                                              marks={k: str(k) for k in range(K_LOW, K_HIGH + 1)}, allowCross=False,
                                              pushable=1), style={"minHeight": f"{SLIDER_HEIGHT}px"})], md=7),
            dbc.Col(html.Div([
                dbc.Button("Run", id=ids.DIAG_RUN, color="primary", className="me-2"),
                dbc.Button("Cancel", id=ids.DIAG_CANCEL, color="secondary", outline=True, disabled=True),
            ], className="d-flex align-items-end h-100 pb-1"), md=5),
        ], className="g-3"),
        dbc.Progress(id=ids.DIAG_PROGRESS, value=total if sweep else 0, max=total,
                     label=f"{total}/{total} k fitted" if sweep else "", className="mt-3", style={"height": "18px"}),
        html.Div([html.Span(id=ids.DIAG_PROGRESS_TEXT, className="me-2"),
                  html.Span(view["status"], id=ids.DIAG_STATUS)],
                 className="small text-muted mt-1", **{"aria-live": "polite"}),
    ]), className="shadow-sm mb-3")
    return html.Div([
        page_header("Choosing k", "How many segments does the data support? Six criteria per k (four quality scores, "
                                  "prediction strength and bootstrap stability), the recommended k, "
                                  "how well each customer fits its segment in the current model, and how segments "
                                  "split as k grows.", basis=a.basis),
        dcc.Store(id=ids.DIAG_STORE, data=sweep),
        # Ticks once, only when the default sweep was too big to compute while building the page.
        dcc.Interval(id=ids.DIAG_AUTORUN, interval=300, max_intervals=1, disabled=sweep is not None),
        controls,
        dbc.Alert(view["advice"], id=ids.DIAG_RECOMMENDATION, color="light", className="border shadow-sm"),
        # The criteria get the page's full width (six panels, three a row); on a phone they keep a readable
        # width and scroll sideways inside the card.
        _chart("Criteria against k", ids.DIAG_METRICS, height=METRICS_HEIGHT, figure=view["figure"], min_width=620),
        dbc.Row([
            dbc.Col(_chart(f"Silhouette plot of the current model (k={a.k})", ids.DIAG_SILHOUETTE, height=480,
                           extra=html.P("One sliver per customer, sorted within its segment: long bars fit their "
                                        "segment well, bars left of 0 sit closer to another segment.",
                                        className="small text-muted mb-0"),
                           figure=silhouette), xl=6),
            dbc.Col(dbc.Card([dbc.CardHeader(html.Span("Metrics per k", className="fw-semibold")),
                              dbc.CardBody(html.Div(view["table"], id=ids.DIAG_TABLE))], className="shadow-sm mb-3"),
                    xl=6),
        ]),
        _ktree_row(services, a.k, log_scale_note(a.features)),
        _algorithms_row(services),
    ])


def _algorithms_row(services):
    """The "Algorithms" section: every algorithm on this version's data, features and k (computed on request)."""
    may, why = permission("compare_algorithms")
    cached = services.algorithm_comparison()
    analysis = services.analysis()
    button = dbc.Button("Compare algorithms", id=ids.DIAG_ALGO_RUN, color="primary", disabled=not may,
                        title=why or "Fit k-means, Gaussian mixture, k-prototypes, HDBSCAN and consensus on this "
                                     "version's customers (about a minute on a few thousand customers)")
    return dbc.Card([
        dbc.CardHeader(html.H2("Algorithms", className="h6 fw-semibold mb-0")),
        dbc.CardBody([
            html.P(version_note(analysis.meta.get("algorithm"), int(analysis.meta.get("n_customers") or 0)),
                   className="mb-2"),
            html.P("The same customers, features and number of segments under each algorithm: quality scores, "
                   "bootstrap stability, prediction strength, how far the algorithms agree, and which to believe.",
                   className="small text-muted"),
            html.Div([button, html.Span(None if may else why, className="small text-muted ms-2"),
                      html.Span(id=ids.DIAG_ALGO_STATUS, className="small text-muted ms-2",
                                **{"aria-live": "polite"})], className="mb-3"),
            dcc.Store(id=ids.DIAG_ALGO_STORE, data=cached),
            html.Div(algorithms_body(cached), id=ids.DIAG_ALGO_BODY),
        ]),
    ], className="shadow-sm mb-3")


def algorithms_body(result):
    """Recommendation, criteria table, notes and agreement heatmap of a comparison (or why there is none)."""
    if not result:
        return html.P("Not compared yet for this version: press Compare algorithms (analysts and admins).",
                      className="mb-0")
    if result.get("error"):
        return html.P(f"Could not compare algorithms: {result['error']}", className="mb-0 text-danger")
    sampled = (f" (fitted on a seeded sample of {result['fitted_on']:,})"
               if result["fitted_on"] < result["customers"] else "")
    parts = [dbc.Alert(result["recommendation"], color="light", className="border"),
             html.P(f"{result['customers']:,} customers{sampled}, k={result['k']}; stability and prediction "
                    f"strength on {result['measured_on']:,}. Features: "
                    + ", ".join(result["features"] + result["categorical"]) + ".", className="small text-muted")]
    frame = comparison_table(result)
    if len(frame):
        parts.append(table(frame, index=False))
    parts += [html.P(line, className="small mb-1") for line in comparison_notes(result)]
    if can_chart_agreement(result):
        parts.append(_chart("Agreement between algorithms (adjusted Rand: 1 = same segments, 0 = chance)",
                            ids.DIAG_ALGO_AGREEMENT, height=380, figure=agreement_figure(result)))
    else:
        parts.append(html.P("Fewer than two algorithms found segments, so there is no agreement to chart.",
                            className="small mb-0"))
    return parts


@callback(Output(ids.DIAG_ALGO_STORE, "data"), Input(ids.DIAG_ALGO_RUN, "n_clicks"),
          background=True, prevent_initial_call=True,
          running=[(Output(ids.DIAG_ALGO_RUN, "disabled"), True, False),
                   (Output(ids.DIAG_ALGO_STATUS, "children"), "Fitting and measuring each algorithm…", "")])
def run_comparison(_n):
    """Compare the algorithms in another process; the caller is the user who started the job (role checked)."""
    from core.access.accounts import Forbidden

    try:
        return Services.from_env().compare_algorithms(caller=job_caller())
    except (ValueError, Forbidden) as exc:
        return {"error": str(exc)}
    except Exception as exc:  # a failed job must leave a message on the page, not a stuck spinner
        traceback.print_exc(file=sys.stderr)
        return {"error": f"the comparison failed ({type(exc).__name__})"}


@callback(Output(ids.DIAG_ALGO_BODY, "children"), Input(ids.DIAG_ALGO_STORE, "data"), prevent_initial_call=True)
def draw_comparison(result):
    """The comparison's section from the stored result."""
    return algorithms_body(result)


def _ktree_row(services, current_k: int, scale_note: str = ""):
    """The k-transition tree (k=2..8) beside the profile of the clicked cluster."""
    tree = services.analyses.ktree()
    heading, rows = node_profile_rows(tree, None)
    note = (f"Each row is one k; each circle a cluster (size: customers, number: cluster, colour as the segment "
            f"of that number), each line the customers moving from a cluster at k to one at k+1 (width: how "
            f"many). A cluster that splits is labelled with the feature that separates its two largest children "
            f"most. The current model is the row k={current_k} (dark outline). Profiles are in the data's own "
            f"units.{' ' + scale_note if scale_note else ''}")
    if tree.get("sampled"):
        note += f" Computed on a random sample of {tree['n_customers']:,} customers."
    return dbc.Row([
        dbc.Col(_chart("How segments split as k grows (k-transition tree)", ids.DIAG_KTREE, height=560,
                       extra=html.P(note, className="small text-muted mb-0"),
                       figure=ktree_figure(tree, current_k=current_k)), xl=8),
        dbc.Col(dbc.Card([dbc.CardHeader(html.Span("Cluster profile", className="fw-semibold")),
                          dbc.CardBody(html.Div(_profile_body(heading, rows), id=ids.DIAG_KTREE_PROFILE,
                                                **{"aria-live": "polite"}))],
                         className="shadow-sm mb-3"), xl=4),
    ])


def _profile_body(heading: str, rows: list[dict]):
    return [html.P(heading, className="small mb-2")] + ([table(pd.DataFrame(rows), index=False)] if rows else [])


@callback(Output(ids.DIAG_KTREE_PROFILE, "children"), Input(ids.DIAG_KTREE, "clickData"), prevent_initial_call=True)
def show_ktree_node(click):
    """The profile of the cluster clicked in the k-transition tree."""
    points = (click or {}).get("points") or [{}]
    node = points[0].get("customdata")
    heading, rows = node_profile_rows(get_services().analyses.ktree(), node if isinstance(node, str) else None)
    return _profile_body(heading, rows)


@callback(Output(ids.DIAG_STORE, "data"),
          Input(ids.DIAG_RUN, "n_clicks"), Input(ids.DIAG_AUTORUN, "n_intervals"), State(ids.DIAG_K_RANGE, "value"),
          background=True, prevent_initial_call=True,
          running=[(Output(ids.DIAG_RUN, "disabled"), True, False),
                   (Output(ids.DIAG_CANCEL, "disabled"), False, True),
                   (Output(ids.DIAG_K_RANGE, "disabled"), True, False),
                   (Output(ids.DIAG_PROGRESS, "animated"), True, False),
                   (Output(ids.DIAG_PROGRESS, "striped"), True, False)],
          progress=[Output(ids.DIAG_PROGRESS, "value"), Output(ids.DIAG_PROGRESS, "max"),
                    Output(ids.DIAG_PROGRESS, "label"), Output(ids.DIAG_PROGRESS_TEXT, "children")],
          cancel=[Input(ids.DIAG_CANCEL, "n_clicks")])
def run_sweep(set_progress, _clicks, _autorun, k_range):
    """Sweep k in another process (no Flask request here, so Services come from the environment)."""
    lo, hi = sorted(int(k) for k in (k_range or DEFAULT_RANGE))
    total = hi - lo + 1
    start = time.monotonic()
    set_progress((0, total, "", f"Fitting k={lo} to {hi}…"))

    def report(done, n, msg):
        elapsed = time.monotonic() - start
        set_progress((done, n, f"{done}/{n}", f"Fitting k={lo} to {hi}: {msg} done, {elapsed:.0f} s so far…"))
    try:
        result = Services.from_env().sweep(lo, hi, progress=report)
    except ValueError as exc:  # e.g. more segments than customers: a message for people
        return {"error": str(exc), "k_min": lo, "k_max": hi}
    except Exception as exc:  # a failed job must leave a message on the page, not a stuck spinner
        traceback.print_exc(file=sys.stderr)
        return {"error": f"the sweep failed ({type(exc).__name__}: {exc})", "k_min": lo, "k_max": hi}
    set_progress((total, total, f"{total}/{total} k fitted", f"Finished in {time.monotonic() - start:.1f} s."))
    return result.to_dict()


@callback(Output(ids.DIAG_PROGRESS_TEXT, "children"), Output(ids.DIAG_PROGRESS, "value"),
          Output(ids.DIAG_PROGRESS, "label"), Input(ids.DIAG_CANCEL, "n_clicks"), prevent_initial_call=True)
def cancelled(_n):
    """Say that the run stopped; the previous sweep stays on the page."""
    return "Cancelled; the charts still show the previous sweep.", 0, ""


@callback(Output(ids.DIAG_METRICS, "figure"), Output(ids.DIAG_RECOMMENDATION, "children"),
          Output(ids.DIAG_TABLE, "children"), Output(ids.DIAG_STATUS, "children"),
          Input(ids.DIAG_STORE, "data"), prevent_initial_call=True)
@describes_figures  # the chart summaries and "view as table" follow the figures (issue 16)
def draw_sweep(sweep):
    """Figures, advice and table from the stored sweep."""
    view = _sweep_view(sweep, get_services().analysis().k)
    return view["figure"], view["advice"], view["table"], view["status"]


def _sweep_view(sweep, current_k: int) -> dict:
    """Metrics figure, advice, table and status line of a stored sweep (or of its error / absence)."""
    if sweep and sweep.get("error"):
        message = f"Could not compare k={sweep['k_min']} to {sweep['k_max']}: {sweep['error']}."
        return {"figure": metrics_figure(None, height=METRICS_HEIGHT),
                "advice": html.P(message, className="mb-0 text-danger"),
                "table": None, "status": message}
    if not sweep:
        wait = "Computing the sweep of k=2 to 10 for this data; the progress bar shows how far it is."
        return {"figure": metrics_figure(None, empty_message="Computing the sweep…", height=METRICS_HEIGHT),
                "advice": html.P(wait, className="mb-0"), "table": None,
                "status": wait}
    paragraphs = recommendation_text(sweep, current_k)
    body = [html.P(html.Strong(paragraphs[0]), className="mb-2")] + [html.P(p, className="mb-1 small")
                                                                    for p in paragraphs[1:]]
    ks = [r["k"] for r in sweep["results"]]
    status = f"Showing k={min(ks)} to {max(ks)} on {sweep['n_customers']:,} customers."
    return {"figure": metrics_figure(sweep, current_k, height=METRICS_HEIGHT), "advice": body,
            "table": table(metrics_table(sweep, current_k), index=False), "status": status}
