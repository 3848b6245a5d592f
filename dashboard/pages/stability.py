"""Stability (/stability): are the segments real? Bootstrap verdicts, enrolment-time snapshots (customer tables) or
segments over time (order logs: who moved from where to where), drift of new data."""
import base64
import binascii

import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, dcc, html

from core.insight.drift import PSI_MAJOR, PSI_MODERATE
from core.versions.exports import to_safe_csv
from core.reading.loading import DataFileError
from core.insight.migration import NEW, MigrationError, NotALogError, movers_audience, transition_table
from core.versions.registry import RegistryError
from core.reading.schema import FEATURE_LABELS, log_scale_note
from dashboard import ids
from dashboard.components import empty_state, graph_card, may, page_header, segment_badge, table
from dashboard.figures.migration import migration_sankey, sizes_figure, value_figure
from dashboard.figures.stability import (
    ari_distribution_figure, ari_time_figure, cohort_figure, drift_heatmap, jaccard_figure, psi_figure,
    sankey_figure, share_shift_figure, shares_figure,
)
from dashboard.services import Services, get_services
from dashboard.services.migration import migration_service

dash.register_page(__name__, path="/stability", name="Stability", order=5, title="SegmentLens · Stability")

DEFAULT_RESAMPLES = 30
RESAMPLE_CHOICES = (30, 100, 200, 500)
_MAX_UPLOAD = 50 * 1024 * 1024
_VERDICT_STYLE = {"highly stable": "success", "stable": "success", "doubtful": "warning", "unstable": "danger",
                  "dissolved": "danger", "not measured": "secondary"}
_RECOMMENDATION_STYLE = {"keep": "success", "watch": "warning", "retrain": "danger"}


def _services() -> Services:
    """The app's Services inside a request; rebuilt from the environment inside a background job."""
    import flask

    return get_services() if flask.has_request_context() or flask.has_app_context() else Services.from_env()


def _verdicts(boot: dict, names: list[str]) -> html.Div:
    """One row per segment: its badge (linking to its profile), verdict, mean Jaccard and dissolutions."""
    rows = []
    for key, value in boot["jaccard"].items():
        i = int(key)
        verdict = boot["verdict"][key]
        rows.append(dbc.ListGroupItem(dbc.Row([
            # On a phone: the name on one line, verdict and numbers side by side on the next.
            dbc.Col(segment_badge(i, f"{i} · {names[i]}", href=f"/profiles?segment={i}"), xs=12, md=5),
            dbc.Col(dbc.Badge(verdict, color=_VERDICT_STYLE.get(verdict, "info" if verdict.startswith("borderline")
                                                                  else "secondary"), className="text-uppercase"),
                    xs="auto", md=3),
            dbc.Col(html.Span((f"Jaccard {value:.2f}" + (" ({:.2f}-{:.2f})".format(*boot["jaccard_interval"][key])
                                                         if None not in boot.get("jaccard_interval", {}).get(key, [None])
                                                         else "")) if value is not None else "Jaccard n/a",
                              className="small"), xs="auto", md=2),
            dbc.Col(html.Span(f"dissolved in {boot['dissolved'][key]} of {boot['resamples']}",
                              className="small text-muted"), xs="auto", md=2),
        ], className="align-items-center g-2")))
    return dbc.ListGroup(rows, flush=True, id=ids.STABILITY_VERDICTS)


def results_view(result: dict, names: list[str], over_time: bool = True) -> html.Div:
    """Every bootstrap and enrolment-time result of Services.stability as page content.

    ``over_time=False`` (an order log: the migration section shows time instead) leaves out the enrolment cohorts.
    """
    boot_result, temporal_result = result["bootstrap"], result["temporal"]
    boot = boot_result.to_dict()
    if not over_time:
        return html.Div(_bootstrap_view(boot_result, boot, names, ""))
    if temporal_result is None:  # data without enrolment dates (a mapped customer table): bootstrap only
        return html.Div(_bootstrap_view(boot_result, boot, names, "") + [
            html.H3("Over enrolment time", className="h5 mt-2"),
            html.P("No enrolment date in this data: stability over enrolment time is not shown.",
                   className="small text-muted", id=ids.STABILITY_NO_ENROLMENT)])
    temporal = temporal_result.to_dict()
    snaps = temporal["snapshots"]
    skipped = temporal["skipped"]
    return html.Div(_bootstrap_view(boot_result, boot, names, temporal_result.summary())
                    + [html.H3("Over enrolment time", className="h5 mt-2")]
                    + _temporal_part(temporal, snaps, skipped, names))


def _bootstrap_view(boot_result, boot: dict, names: list[str], temporal_summary: str) -> list:
    """The summary and the bootstrap's verdicts and charts."""
    return [
        dbc.Alert([html.Strong("In short: "), boot_result.summary(names), " ", temporal_summary],
                  color="light", className="border", id=ids.STABILITY_SUMMARY),
        dbc.Card([
            dbc.CardHeader(html.Span(f"Verdict per segment ({boot['resamples']} bootstrap resamples, each refitted "
                                     f"with {boot['n_init']} k-means starts like the model; Hennig's thresholds)",
                                     className="fw-semibold")),
            dbc.CardBody(html.P(f"Scheme: {boot.get('scheme_description', boot.get('scheme', ''))}. Each segment's "
                                "mean Jaccard has a 95% interval (in brackets); a segment gets a verdict only when "
                                "the whole interval lies in one band, otherwise it is borderline between two.",
                                className="small text-muted mb-0"), className="py-2"),
            _verdicts(boot, names),
        ], className="mb-3 shadow-sm"),
        dbc.Row([
            dbc.Col(graph_card("Mean Jaccard per segment (whiskers: 5-95% of resamples)", ids.STABILITY_JACCARD,
                               height=340, min_width=560, figure=jaccard_figure(boot["jaccard"], names, boot["jaccard_quantiles"],
                                                                 boot["verdict"], boot.get("jaccard_interval"))),
                    lg=7),
            dbc.Col(graph_card("Adjusted Rand index, model vs each refit", ids.STABILITY_ARI, height=340,
                               figure=ari_distribution_figure(boot["ari"])), lg=5),
        ]),
    ]


def _temporal_part(temporal: dict, snaps, skipped, names: list[str]) -> list:
    """The enrolment-time snapshots' note and charts."""
    return [
        dbc.Alert([temporal["note"], " Each snapshot holds every customer enrolled up to the end of the "
                   f"{temporal['window']}, fitted with the model's features, k and seed, its segments matched to "
                   "the model's by their centres."]
                  + ([html.Br(), "Skipped (fewer than 10 customers per segment): "
                      + ", ".join(f"{s['period']} ({s['n_customers']} customers)" for s in skipped)]
                     if skipped else []),
                  color="info", className="small"),
        dbc.Row([
            dbc.Col(graph_card("Agreement with the model (adjusted Rand index)", ids.STABILITY_ARI_TIME, height=320,
                               figure=ari_time_figure(snaps)), lg=6),
            dbc.Col(graph_card("Segment shares per snapshot", ids.STABILITY_SHARES, height=320,
                               figure=shares_figure(snaps, names), min_width=520), lg=6),
        ]),
        # Heatmap and Sankey keep a readable width on a phone and scroll sideways inside their cards; the
        # Sankey takes the full width so its eight columns of nodes and flows have room.
        dbc.Row([
            dbc.Col(graph_card("Centroid drift from the model (scaled units)", ids.STABILITY_DRIFT_HEATMAP,
                               height=320, figure=drift_heatmap(snaps, names), min_width=520), lg=6),
            dbc.Col(graph_card("The model's segment mix per enrolment cohort", ids.STABILITY_COHORTS, height=320,
                               figure=cohort_figure(temporal["cohorts"], names), min_width=520), lg=6),
        ]),
        graph_card("Customers between consecutive snapshots", ids.STABILITY_SANKEY, height=440,
                   figure=sankey_figure(temporal["flows"], snaps, names), min_width=560),
    ]


def _scale_note(features: list[dict]):
    """Said once beside the features: which are clustered on a log scale (named as their columns)."""
    note = log_scale_note(r["feature"] for r in features)
    return html.P(note, className="small text-muted mb-0") if note else None


def _drift_view(result: dict, names: list[str]) -> html.Div:
    """The drift report of Services.drift as page content."""
    report = result["report"]
    data = report.to_dict()
    return html.Div([
        dbc.Alert([html.Strong(f"{report.recommendation.capitalize()}: "), report.reason,
                   html.Div(f"{result['new_source']} ({report.n_new:,} customers) against {result['reference_source']} "
                            f"({report.n_reference:,} customers), model {result['version']}.", className="small mt-1"),
                   html.Div(result["note"], className="small mt-1") if result.get("note") else None],
                  color=_RECOMMENDATION_STYLE.get(report.recommendation, "secondary"), id=ids.STABILITY_RECOMMENDATION),
        dbc.Row([
            dbc.Col(graph_card(f"Feature drift (PSI; {PSI_MODERATE} moderate, {PSI_MAJOR} significant)",
                               ids.STABILITY_PSI, height=320, extra=_scale_note(data["features"]),
                               figure=psi_figure(data["features"], FEATURE_LABELS)), lg=6),
            dbc.Col(graph_card("Segment shares, training vs new data (scored with the model)",
                               ids.STABILITY_SHARE_SHIFT, height=320,
                               figure=share_shift_figure(data["segments"], names)), lg=6),
        ]),
    ])


def _is_log(services) -> bool:
    """Whether the served version was trained on an order log (its time is purchases, not enrolment)."""
    try:
        migration_service(services).log()
    except NotALogError:
        return False
    except (MigrationError, RegistryError, OSError):
        return True  # a log version whose log cannot be read: the migration section says why
    return True


def _migration_view(run: dict, names: list[str]) -> html.Div:
    """Headlines, notes, the Sankey and sizes and value over time of one migration."""
    dates = run["dates"]
    return html.Div([
        dbc.Alert([html.Strong("Largest moves: "),
                   html.Ul([html.Li(h) for h in run["headlines"]], className="mb-0")] if run["headlines"]
                  else "No customer changed segment between these snapshots.",
                  color="light", className="border", id=ids.MIGRATION_HEADLINES),
        html.Div([dbc.Alert(n, color="warning", className="small py-2") for n in run.get("notes", [])],
                 id=ids.MIGRATION_NOTES),
        graph_card(f"Customers between snapshots (last {min(len(dates), 8)} of {len(dates)})", ids.MIGRATION_SANKEY,
                   height=460, figure=migration_sankey(run, names), min_width=560),
        dbc.Row([
            dbc.Col(graph_card("Customers per segment at each snapshot", ids.MIGRATION_SIZES, height=340,
                               figure=sizes_figure(run, names), min_width=520), lg=6),
            dbc.Col(graph_card("Spend in each period, by segment at its end", ids.MIGRATION_VALUE, height=340,
                               figure=value_figure(run, names), min_width=520), lg=6),
        ]),
    ])


def _periods(run: dict | None) -> list[dict]:
    dates = run["dates"] if run else []
    return [{"label": f"{a} → {b}", "value": f"{a}|{b}"} for a, b in zip(dates, dates[1:])]


def _transition_view(run: dict, from_date: str, to_date: str, names: list[str]):
    """The transition matrix of one period, rows and columns named 'i · name' (text, never markup)."""
    matrix = transition_table(run, from_date, to_date)
    label = {i: f"{i} · {n}" for i, n in enumerate(names)}
    matrix.index = [i if i in (NEW, "total") else label[int(i)] for i in matrix.index]
    matrix.index.name = f"{from_date} ↓ / {to_date} →"
    matrix.columns = [c if c == "total" else label[int(c)] for c in matrix.columns]
    return table(matrix, float_format="{:,.0f}")


def _migration_section(services, log: bool) -> html.Div:
    """An order log's segments over time: the month view (stored with the version), its table and movers.

    Built (hidden) for customer tables too: the page's callbacks need their components in every layout.
    """
    names = services.segment_names()
    run, problem = None, None
    if log:
        try:
            run = migration_service(services).migration("month")
        except (MigrationError, DataFileError, RegistryError, OSError) as exc:
            problem = str(exc)
    dates = [{"label": d, "value": d} for d in (run["dates"] if run else [])]
    periods = _periods(run)
    segments = ([{"label": "any segment", "value": ""}]
                + [{"label": f"{i} · {n}", "value": str(i)} for i, n in enumerate(names)])
    can, reason = may("campaign")

    def select(label, cid, options, value):
        return dbc.Col([dbc.Label(label, html_for=cid, className="small mb-1"),
                        dbc.Select(id=cid, options=options, value=value, size="sm")], xs=6, md=3)
    transitions = dbc.Card([
        dbc.CardHeader(dbc.Row([
            dbc.Col(html.Span("Transition table: customers from each segment (rows; new = first purchase in the "
                              "period) to each segment (columns)", className="fw-semibold"), md=8),
            dbc.Col([dbc.Label("Period", html_for=ids.MIGRATION_PERIOD, className="visually-hidden"),
                     dbc.Select(id=ids.MIGRATION_PERIOD, options=periods,
                                value=periods[-1]["value"] if periods else None, size="sm")], md=4),
        ], className="align-items-center g-2")),
        dbc.CardBody(_transition_view(run, run["dates"][-2], run["dates"][-1], names) if run else None,
                     id=ids.MIGRATION_TABLE),
    ], className="mb-3 shadow-sm")
    movers = dbc.Card([
        dbc.CardHeader(html.Span("Movers: customers who changed segment between two dates", className="fw-semibold")),
        dbc.CardBody([
            dbc.Row([select("From date", ids.MIGRATION_FROM_DATE, dates, run["dates"][-2] if run else None),
                     select("To date", ids.MIGRATION_TO_DATE, dates, run["dates"][-1] if run else None),
                     select("From segment", ids.MIGRATION_FROM_SEGMENT,
                            segments + [{"label": "new (first purchase)", "value": NEW}], ""),
                     select("To segment", ids.MIGRATION_TO_SEGMENT, segments, "")], className="g-2 mb-2"),
            html.Div(id=ids.MIGRATION_MOVERS, role="status", className="small mb-2"),
            html.Span(dbc.Button("Download movers (CSV)", id=ids.MIGRATION_DOWNLOAD_BTN, color="primary", size="sm",
                                 outline=True, disabled=not can, className="me-2"), title=reason or ""),
            html.Span(dbc.Button("Download as campaign audience (CSV)", id=ids.MIGRATION_AUDIENCE_BTN, size="sm",
                                 color="primary", outline=True, disabled=not can), title=reason or ""),
            html.Div("The audience file has ID, segment (the one moved to), group (a random 10% holdout per segment) "
                     "and propensity (0: no response model ranked them); measure it on /campaigns or with "
                     "`python -m core campaign results`.", className="small text-muted mt-1"),
            dcc.Download(id=ids.MIGRATION_DOWNLOAD), dcc.Download(id=ids.MIGRATION_AUDIENCE_DOWNLOAD),
        ]),
    ], className="mb-3 shadow-sm")
    about = (dbc.Alert(f"Each customer is scored as of every snapshot date with this version's model: only purchases "
                       f"up to the date count, Recency and Tenure are measured to it, and customers who had not bought "
                       f"yet are absent. The last snapshot ({run['dates'][-1]}) is the version's own segmentation. "
                       f"{run['source']}: {run['rows']:,} rows.", color="info", className="small") if run else None)
    content = (_migration_view(run, names) if run else
               empty_state("Segments over time cannot be shown for this log.", problem) if problem else None)
    return html.Div([
        html.H3("Over time: who moved from where to where", className="h5 mt-2"),
        about,
        dbc.RadioItems(id=ids.MIGRATION_EVERY, value="month", inline=True, className="mb-2",
                       options=[{"label": "every month", "value": "month"},
                                {"label": "every quarter", "value": "quarter"}]),
        dcc.Loading(html.Div(content, id=ids.MIGRATION_CONTENT), type="circle", delay_show=400),
        transitions,
        movers,
    ], id=ids.MIGRATION_SECTION, style=None if log else {"display": "none"})


def layout(**_query):
    """The stability page, showing results for a modest default so it is never empty."""
    services = get_services()
    names = services.segment_names()
    configured = services.drift_data_path()
    log = _is_log(services)
    try:
        initial = services.view("stability", lambda: results_view(services.stability(DEFAULT_RESAMPLES, "quarter"),
                                                                   names, not log), DEFAULT_RESAMPLES, "quarter")
    except ValueError as exc:
        initial = empty_state("Stability cannot be measured on this data.", str(exc))
    controls = dbc.Card(dbc.CardBody(dbc.Row([
        dbc.Col([dbc.Label("Bootstrap resamples", html_for=ids.STABILITY_RESAMPLES, className="small mb-1"),
                 dbc.Select(id=ids.STABILITY_RESAMPLES, value=str(DEFAULT_RESAMPLES),
                            options=[{"label": str(b), "value": str(b)} for b in RESAMPLE_CHOICES])], md=2),
        dbc.Col([dbc.Label("Enrolment snapshots every", className="small mb-1"),
                 dbc.RadioItems(id=ids.STABILITY_WINDOW, value="quarter", inline=True,
                                options=[{"label": "quarter", "value": "quarter"},
                                         {"label": "month", "value": "month"}])], md=3,
                style={"display": "none"} if log else None),
        dbc.Col(dbc.Button("Measure stability", id=ids.STABILITY_RUN, color="primary"), md="auto"),
        dbc.Col(dbc.Progress(id=ids.STABILITY_PROGRESS, value=0, max=100, striped=True, style={"height": "1.2rem"}),
                md=True),
    ], className="align-items-end g-3")), className="mb-3 shadow-sm")
    drift = dbc.Card([
        dbc.CardHeader(html.Span("Against new data: is the model still right for a later extract?",
                                 className="fw-semibold")),
        dbc.CardBody([
            dbc.Row([
                dbc.Col(dcc.Upload(
                    id=ids.STABILITY_UPLOAD, max_size=_MAX_UPLOAD, multiple=False,
                    children=html.Div(["Drop a later customer file here or ", html.A("choose one", href="#")]),
                    className="border border-2 rounded p-3 text-center bg-light",
                    style={"borderStyle": "dashed"}), md=6),
                dbc.Col([
                    dbc.Button("Compare with the configured file", id=ids.STABILITY_DRIFT_CONFIGURED,
                               color="primary", outline=True, disabled=configured is None),
                    html.Div(configured.name if configured else "none configured (SEGMENTLENS_DRIFT_DATA)",
                             className="small text-muted mt-1"),
                ], md=3),
                dbc.Col(dbc.Progress(id=ids.STABILITY_DRIFT_PROGRESS, value=0, max=100, striped=True,
                                     style={"height": "1.2rem"}), md=3),
            ], className="align-items-center g-3 mb-3"),
            html.Div(empty_state("Upload a later extract of the customer file to see whether the model still fits.",
                                 "Same format as the training file. Compared: each feature's distribution (PSI), "
                                 "segment shares under the model, and a refit on the new customers."),
                     id=ids.STABILITY_DRIFT_RESULTS),
        ]),
    ], className="mb-3 shadow-sm")
    return html.Div([
        page_header("Stability", "Is each segment real? Measured by refitting on resampled customers, on "
                                 "customers enrolled up to each date, and on new data.", basis=services.analysis().basis),
        controls,
        # Spoken by screen readers when a measurement starts and ends (the results replace themselves silently).
        html.Div(id=ids.STABILITY_STATUS, role="status", className="small text-muted mb-2"),
        dcc.Loading(html.Div(initial, id=ids.STABILITY_RESULTS), type="circle", delay_show=400),
        _migration_section(services, log),
        html.H3("New data", className="h5 mt-2"),
        drift,
    ])


@callback(Output(ids.STABILITY_RESULTS, "children"), Input(ids.STABILITY_RUN, "n_clicks"),
          State(ids.STABILITY_RESAMPLES, "value"), State(ids.STABILITY_WINDOW, "value"),
          background=True, prevent_initial_call=True,
          running=[(Output(ids.STABILITY_RUN, "disabled"), True, False),
                   (Output(ids.STABILITY_STATUS, "children"), "Measuring stability…", "Stability measured: results below.")],
          progress=[Output(ids.STABILITY_PROGRESS, "value"), Output(ids.STABILITY_PROGRESS, "label")],
          progress_default=[0, ""])
def measure(set_progress, _n, resamples, window):
    """Bootstrap and enrolment-time stability for the chosen resamples and window (background job)."""
    services = _services()
    try:
        result = services.stability(int(resamples or DEFAULT_RESAMPLES), window or "quarter",
                                    progress=lambda done, total, _m: set_progress([done, f"{done}%"]))
    except ValueError as exc:
        return empty_state("Stability cannot be measured with these settings.", str(exc))
    return results_view(result, services.segment_names(), not _is_log(services))


@callback(Output(ids.STABILITY_DRIFT_RESULTS, "children"), Input(ids.STABILITY_UPLOAD, "contents"),
          Input(ids.STABILITY_DRIFT_CONFIGURED, "n_clicks"), State(ids.STABILITY_UPLOAD, "filename"),
          background=True, prevent_initial_call=True,
          running=[(Output(ids.STABILITY_UPLOAD, "disabled"), True, False)],
          progress=[Output(ids.STABILITY_DRIFT_PROGRESS, "value"), Output(ids.STABILITY_DRIFT_PROGRESS, "label")],
          progress_default=[0, ""])
def compare(set_progress, contents, _n, filename):
    """Drift of an uploaded (or the configured) later extract against the model's data (background job)."""
    services = _services()
    use_upload = dash.ctx.triggered_id == ids.STABILITY_UPLOAD and contents
    try:
        source = base64.b64decode(contents.split(",", 1)[1], validate=True) if use_upload else None
        result = services.drift(source, name=filename if use_upload else None,
                                progress=lambda d, t, _m: set_progress([int(100 * d / t), f"{int(100 * d / t)}%"]))
    except (DataFileError, ValueError, binascii.Error, IndexError) as exc:
        return dbc.Alert([html.Strong("This file cannot be compared: "), str(exc)], color="danger")
    set_progress([100, "100%"])
    return _drift_view(result, services.segment_names())


# ---------------------------------------------------------------- segments over time (order logs)
@callback(Output(ids.MIGRATION_CONTENT, "children"), Output(ids.MIGRATION_FROM_DATE, "options"),
          Output(ids.MIGRATION_TO_DATE, "options"), Output(ids.MIGRATION_FROM_DATE, "value"),
          Output(ids.MIGRATION_TO_DATE, "value"), Output(ids.MIGRATION_PERIOD, "options"),
          Output(ids.MIGRATION_PERIOD, "value"), Input(ids.MIGRATION_EVERY, "value"), prevent_initial_call=True)
def migration_every(every):
    """The migration view for month or quarter snapshots (stored with the version after the first time)."""
    services = get_services()
    try:
        run = migration_service(services).migration(every or "month")
    except (MigrationError, DataFileError, RegistryError, OSError) as exc:
        return empty_state("Segments over time cannot be shown.", str(exc)), [], [], None, None, [], None
    dates = [{"label": d, "value": d} for d in run["dates"]]
    periods = _periods(run)
    return (_migration_view(run, services.segment_names()), dates, dates, run["dates"][-2], run["dates"][-1],
            periods, periods[-1]["value"])


@callback(Output(ids.MIGRATION_TABLE, "children"), Input(ids.MIGRATION_PERIOD, "value"),
          State(ids.MIGRATION_EVERY, "value"), prevent_initial_call=True)
def migration_period(period, every):
    """The transition table of the chosen period."""
    if not period:
        return dash.no_update
    services = get_services()
    from_date, _, to_date = str(period).partition("|")
    try:
        run = migration_service(services).migration(every or "month")
    except (MigrationError, DataFileError, RegistryError, OSError) as exc:
        return str(exc)
    return _transition_view(run, from_date, to_date, services.segment_names())


def _movers(from_date, to_date, from_segment, to_segment):
    """The movers the form describes (MigrationError with a message for people when it cannot be read)."""
    if not from_date or not to_date:
        raise MigrationError("choose a from date and a to date")
    frm = NEW if from_segment == NEW else (int(from_segment) if from_segment not in (None, "") else None)
    to = int(to_segment) if to_segment not in (None, "") else None
    return migration_service(get_services()).movers(from_date, to_date, frm, to)


_MOVER_FORM = [Input(ids.MIGRATION_FROM_DATE, "value"), Input(ids.MIGRATION_TO_DATE, "value"),
               Input(ids.MIGRATION_FROM_SEGMENT, "value"), Input(ids.MIGRATION_TO_SEGMENT, "value")]


@callback(Output(ids.MIGRATION_MOVERS, "children"), *_MOVER_FORM)
def movers_summary(from_date, to_date, from_segment, to_segment):
    """How many customers moved as the form says, and the first few of them."""
    try:
        frame = _movers(from_date, to_date, from_segment, to_segment)
    except (MigrationError, DataFileError, RegistryError, OSError, ValueError) as exc:
        return dbc.Alert(str(exc), color="warning", className="small py-2 mb-0")
    if not len(frame):
        return html.P(f"Nobody moved that way between {from_date} and {to_date}.", className="mb-0")
    shown = frame.head(8).set_index("ID")[["from_name", "to_name", "Recency_before", "Recency_after",
                                            "Monetary_before", "Monetary_after"]]
    return html.Div([html.P(f"{len(frame):,} customers moved between {from_date} and {to_date}"
                            + (" (the first 8 below)." if len(frame) > 8 else "."), className="mb-1"),
                     table(shown, float_format="{:,.2f}")])


@callback(Output(ids.MIGRATION_DOWNLOAD, "data"), Input(ids.MIGRATION_DOWNLOAD_BTN, "n_clicks"),
          *[State(i.component_id, i.component_property) for i in _MOVER_FORM], prevent_initial_call=True)
def download_movers(_n, from_date, to_date, from_segment, to_segment):
    """The movers as formula-safe CSV (analysts: it is customer IDs; the server checks the role)."""
    try:
        frame = _movers(from_date, to_date, from_segment, to_segment)
    except (MigrationError, DataFileError, RegistryError, OSError, ValueError):
        return dash.no_update
    return dict(content=to_safe_csv(frame), filename=f"movers-{from_date}-{to_date}.csv", type="text/csv")


@callback(Output(ids.MIGRATION_AUDIENCE_DOWNLOAD, "data"), Input(ids.MIGRATION_AUDIENCE_BTN, "n_clicks"),
          *[State(i.component_id, i.component_property) for i in _MOVER_FORM], prevent_initial_call=True)
def download_audience(_n, from_date, to_date, from_segment, to_segment):
    """The movers as a campaign audience with a seeded holdout (analysts; the server checks the role)."""
    try:
        frame = _movers(from_date, to_date, from_segment, to_segment)
    except (MigrationError, DataFileError, RegistryError, OSError, ValueError):
        return dash.no_update
    return dict(content=to_safe_csv(movers_audience(frame)), filename=f"audience-movers-{from_date}-{to_date}.csv",
                type="text/csv")
