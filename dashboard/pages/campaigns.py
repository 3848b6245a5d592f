"""Campaign planner (/campaigns): economics, propensity, profit curve, audience with holdout, measured uplift."""
import dash
import dash_bootstrap_components as dbc
from dash import Input, Output, State, callback, dcc, html

from core.campaigns.campaign import CampaignError, Economics
from core.insight.profiles import LIFT_THRESHOLD
from core.versions.registry import RegistryError
from dashboard import ids
from dashboard.components import (
    as_actor, empty_state, graph_card, kpi_card, may, model_unavailable, page_header, permission_note, table,
    describes_figures,
)
from dashboard.figures.common import empty_figure
from dashboard.figures.campaigns import (
    calibration_figure, profit_curve_figure, results_table, segment_plan_table,
)
from dashboard.figures.profiles import CATEGORY_LABELS
from dashboard.services import get_services

dash.register_page(__name__, path="/campaigns", name="Campaigns", order=6.8, title="SegmentLens · Campaigns")

_MODES = [{"label": "Most profitable number", "value": "best"}, {"label": "Top N", "value": "top_n"},
          {"label": "Chosen segments", "value": "segments"}]
_FORM = [Input(ids.CAMPAIGNS_COST, "value"), Input(ids.CAMPAIGNS_REVENUE, "value"),
         Input(ids.CAMPAIGNS_BUDGET, "value"), Input(ids.CAMPAIGNS_MAX_CONTACTS, "value"),
         Input(ids.CAMPAIGNS_HOLDOUT, "value"), Input(ids.CAMPAIGNS_SEED, "value"),
         Input(ids.CAMPAIGNS_MODE, "value"), Input(ids.CAMPAIGNS_TOP_N, "value"),
         Input(ids.CAMPAIGNS_SEGMENTS, "value")]


def parse_form(cost, revenue, budget, max_contacts, holdout, seed, mode, top_n, segments):
    """The form as (Economics, top_n, segments); CampaignError naming the field otherwise."""
    econ = Economics.checked(cost, revenue, budget, max_contacts, holdout, seed)
    if mode == "top_n":
        if top_n in (None, ""):
            raise CampaignError("top N: enter how many customers to contact")
        try:
            n = int(float(top_n))
        except (TypeError, ValueError):
            raise CampaignError(f"top N: {top_n!r} is not a whole number") from None
        if n < 1:
            raise CampaignError(f"top N: must be at least 1, got {n}")
        return econ, n, None
    if mode == "segments":
        if not segments:
            raise CampaignError("segments: tick at least one segment")
        return econ, None, [int(s) for s in segments]
    return econ, None, None


def _guarded(control, reason):
    """A control wrapped so its disabled reason shows on hover (a disabled button gets no events)."""
    return html.Span(control, title=reason, className="d-inline-block") if reason else control


def _field(label, cid, value, hint, **kwargs):
    return dbc.Col([dbc.Label(label, html_for=cid, className="small fw-semibold mb-0"),
                    dbc.Input(id=cid, value=value, type="number", debounce=True, size="sm", **kwargs),
                    html.Div(hint, className="small text-muted")], xs=6, className="mb-2")


def _views(services, form):
    """KPIs, profit curve and the per-segment table of the plan the form describes."""
    econ, top_n, segments = parse_form(*form)
    plan = services.campaigns.plan(econ, top_n=top_n, segments=segments)
    t = plan.totals
    kpis = dbc.Row([
        dbc.Col(kpi_card("Target", f"{t['n_targeted']:,}", f"+ {t['n_holdout']:,} held out"), xs=6, lg=3, className="mb-2"),
        dbc.Col(kpi_card("Expected responders", f"{t['expected_responders']:,.1f}",
                         f"95%: {t['responders_low']:,.1f}–{t['responders_high']:,.1f}"), xs=6, lg=3, className="mb-2"),
        dbc.Col(kpi_card("Expected profit", f"{t['expected_profit']:,.0f}",
                         f"95%: {t['profit_low']:,.0f} to {t['profit_high']:,.0f}; cost {t['cost']:,.0f}"),
                xs=6, lg=3, className="mb-2"),
        dbc.Col(kpi_card("Best number · break-even", f"{plan.best_n:,} · {plan.break_even_n:,}",
                         f"worth contacting above {plan.break_even_propensity:.1%} propensity"), xs=6, lg=3,
                className="mb-2"),
    ])
    notes = [html.Div(n, className="small text-muted") for n in plan.notes]
    curve = profit_curve_figure(plan.curve, plan.best_n, plan.break_even_n, len(plan.audience))
    frame = segment_plan_table(plan.segments, services.campaigns.segment_response(), services.segment_names())
    return html.Div([kpis, *notes]), curve, _segment_view(frame)


def _recommendations(services):
    names = services.segment_names()
    recs = services.campaigns.recommendations()
    items = []
    for s, cats in recs.items():
        strong = [f"{CATEGORY_LABELS.get(c, c)} {v:.1f}×" for c, v in cats[:3] if v >= LIFT_THRESHOLD]
        words = ", ".join(strong) if strong else (
            f"none stands out (closest: {CATEGORY_LABELS.get(cats[0][0], cats[0][0])} {cats[0][1]:.1f}×); "
            "lead with the offer itself" if cats else "no spend recorded")
        items.append(html.Li([html.Span(f"{s} · {names[s]}: ", className="fw-semibold"), words], className="small"))
    return html.Div([html.Ul(items, className="ps-3 mb-1"),
                     html.Div(f"Share of the segment's spend in a category against everyone's (lift); at "
                              f"{LIFT_THRESHOLD:g}× or more, feature it in the offer.", className="small text-muted")])


def _segment_view(frame):
    """The per-segment plan: a table on wide screens, one block per segment on a phone (no sideways scroll)."""
    blocks = [html.Div([html.Div(row["Segment"], className="fw-semibold"),
                        html.Dl(sum(([html.Dt(col, className="col-5 fw-normal text-muted"),
                                      html.Dd(row[col], className="col-7 mb-0")] for col in frame.columns[1:]), []),
                                className="row small mb-2")], className="border-bottom pb-1 mb-2")
              for _, row in frame.iterrows()]
    return html.Div([html.Div(table(frame, index=False, class_name="campaigns-table"), className="d-none d-md-block"),
                     html.Div(blocks, className="d-md-none")])


def _plans_view(plans, names):
    """Options of the plan picker and the table of saved plans with their measured uplift."""
    options = [{"label": f"{p['id']} · target {p.get('n_targeted', 0):,}", "value": p["id"]} for p in plans]
    if not plans:
        return options, empty_state("No saved plan yet.", "Save a plan to download its audience and, after the "
                                    "campaign, upload what happened.")
    rows = []
    for p in plans:
        res = p.get("results") or {}
        overall = res.get("overall") or {}
        up = overall.get("uplift")
        rows.append({"Plan": p["id"], "Created": str(p.get("created", ""))[:16].replace("T", " "),
                     "Model": p.get("model_version", ""), "Target": f"{p.get('n_targeted', 0):,}",
                     "Holdout": f"{p.get('n_holdout', 0):,}",
                     "Expected profit": f"{p.get('expected_profit') or 0:,.0f}",
                     "Measured uplift": "not measured" if up is None else f"{up:+.1%}"})
    import pandas as pd

    return options, table(pd.DataFrame(rows), index=False)


def _results_view(services, plan_id):
    if not plan_id:
        return None
    try:
        record = services.campaigns.store().get(plan_id)
    except CampaignError as exc:
        return html.Div(str(exc), className="text-danger small")
    res = record.get("results")
    econ = record.get("economics", {})
    head = html.Div(f"Plan {record['id']}: cost {econ.get('cost', 0):g} per contact, revenue "
                    f"{econ.get('revenue', 0):g} per responder, holdout {econ.get('holdout', 0):.0%}; "
                    f"expected profit {record.get('expected_profit') or 0:,.0f}.", className="small mb-2")
    if not res:
        return html.Div([head, html.Div("No outcomes uploaded for this plan yet.", className="small text-muted")])
    inc = res.get("incremental_profit") or {}
    profit = ("–" if inc.get("value") is None else
              f"{inc['value']:,.0f} (95%: {inc.get('low', 0):,.0f} to {inc.get('high', 0):,.0f})")
    return html.Div([
        head,
        html.Div(f"Incremental profit: {profit}. Predicted responders in the target group "
                 f"{res.get('predicted_responders', 0):,.1f}, actual {res.get('actual_responders', 0):,.0f}"
                 + (f"; {res['n_without_outcome']:,} audience members had no outcome." if res.get("n_without_outcome")
                    else "."), className="small mb-2"),
        table(results_table(res, services.segment_names()), index=False),
    ])


def layout(**_query):
    """The campaign planner page."""
    try:
        return _layout()
    except RegistryError as exc:
        return model_unavailable(exc)
    except CampaignError as exc:
        # Data without the last campaign's response (a transaction log's customers, a mapped table): one
        # line says so; the planner stays in the layout, hidden, so its callbacks' ids are all present.
        try:
            return _layout(absent=str(exc))
        except (CampaignError, KeyError, ValueError):
            return html.Div([page_header("Campaigns"), empty_state(f"No campaign plan can be made: {exc}.",
                                                                   "The data needs the last campaign's Response (0/1).")])


def _layout(absent: str | None = None):
    services = get_services()
    camp = services.campaigns
    fitted = camp.propensity() if absent is None else None
    cost, revenue = camp.defaults() if absent is None else (1.0, 10.0)
    names = services.segment_names()
    form = (cost, revenue, None, None, 0.1, 42, "best", None, [])
    kpis, curve, seg_table = _views(services, form) if absent is None else (None, empty_figure(""), None)
    can, why_not = may("campaign")
    plans = camp.plans()
    options, plans_table = _plans_view(plans, names)
    controls = dbc.Card([dbc.CardHeader(html.Span("Economics", className="fw-semibold")), dbc.CardBody([
        dbc.Row([
            _field("Cost per contact", ids.CAMPAIGNS_COST, cost, "per customer contacted", min=0, step="any"),
            _field("Revenue / responder", ids.CAMPAIGNS_REVENUE, revenue, "or margin", min=0, step="any"),
            _field("Budget", ids.CAMPAIGNS_BUDGET, None, "optional", min=0, step="any"),
            _field("Max contacts", ids.CAMPAIGNS_MAX_CONTACTS, None, "optional", min=1, step=1),
            _field("Holdout share", ids.CAMPAIGNS_HOLDOUT, 0.1, "0 to 0.5, kept uncontacted", min=0, max=0.5,
                   step=0.01),
            _field("Seed", ids.CAMPAIGNS_SEED, 42, "folds and holdout draw", min=0, step=1),
        ], className="g-2"),
        dbc.Label("Whom to contact", html_for=ids.CAMPAIGNS_MODE, className="small fw-semibold mb-0"),
        dbc.RadioItems(id=ids.CAMPAIGNS_MODE, options=_MODES, value="best", className="small mb-1"),
        dbc.Input(id=ids.CAMPAIGNS_TOP_N, type="number", min=1, step=1, debounce=True, size="sm",
                  placeholder="N (for Top N)", className="mb-1"),
        dbc.Checklist(id=ids.CAMPAIGNS_SEGMENTS, value=[], className="small",
                      options=[{"label": f"{i} · {n}", "value": i} for i, n in enumerate(names)]),
        html.Div(id=ids.CAMPAIGNS_FEEDBACK, className="small text-danger mt-1", role="alert"),
        html.Hr(className="my-2"),
        _guarded(dbc.Button("Save plan", id=ids.CAMPAIGNS_SAVE_BTN, color="primary", size="sm", disabled=not can),
                 why_not),
        permission_note(why_not, ids.CAMPAIGNS_PERMISSION_NOTE),
        html.Div(id=ids.CAMPAIGNS_SAVE_FEEDBACK, className="small mt-1", role="status"),
        html.Div("Saving keeps the economics, the model version and the audience (target and a random holdout per "
                 "segment) so you can download it and later measure what happened.", className="small text-muted"),
    ])], className="shadow-sm mb-3")
    model_note = html.Div(
        f"Propensity: a logistic regression of the last campaign's response on each customer's features, segment "
        f"and earlier campaigns, scored out-of-fold ({fitted.folds} folds). Cross-validated AUC {fitted.auc:.3f} "
        f"(folds {min(fitted.fold_aucs):.2f}–{max(fitted.fold_aucs):.2f}). It predicts a campaign like the last "
        "one: a different offer, channel or season may answer differently." if fitted is not None else None,
        id=ids.CAMPAIGNS_MODEL_NOTE, className="small text-muted mb-2")
    header = page_header("Campaigns", "Whom to contact in a campaign like the last one, how many, with a holdout to "
                                      "measure whether it worked.", basis=services.analysis().basis)
    no_response = "Response" not in services.analysis().frame.columns if absent is not None else False
    note = (html.P("No campaign responses in this data: the campaign planner is not shown." if no_response
                   else f"The campaign planner is not shown: {absent}.", className="text-muted",
                   id=ids.CAMPAIGNS_ABSENT_NOTE) if absent is not None else None)
    return html.Div([
        dcc.Store(id=ids.CAMPAIGNS_SAVED), dcc.Store(id=ids.CAMPAIGNS_RESULTS_STORE),
        dcc.Download(id=ids.CAMPAIGNS_DOWNLOAD),
        header,
        note,
        _value_targeting(services, can, why_not),
        html.Div(_planner(services, controls, model_note, kpis, curve, seg_table, fitted, options, plans_table,
                          can, why_not), style={"display": "none"} if absent is not None else None),
    ])


def _value_targeting(services, can: bool, why_not) -> dbc.Card:
    """Target by customer value (issue 24): the highest CLV or a win-back audience, from /value's stored fit."""
    from dashboard.services.value import ValueUnavailable

    try:
        services.values.source_of()
        available, note = True, None
    except (ValueUnavailable, RegistryError) as exc:
        available, note = False, f"Not available: {exc}."
    return dbc.Card([dbc.CardHeader(html.Span("Target by customer value", className="fw-semibold")), dbc.CardBody([
        html.Div(note, className="small text-muted mb-2") if note else None,
        dbc.RadioItems(id=ids.CAMPAIGNS_VALUE_TARGET, value="winback", className="small mb-1", inline=True,
                       options=[{"label": "Win-back: valuable but slipping", "value": "winback"},
                                {"label": "Highest CLV", "value": "clv"}]),
        dbc.Row([
            _field("Probability alive below", ids.CAMPAIGNS_VALUE_THRESHOLD, 0.5, "win-back only; past value in "
                   "the top 20%", min=0.01, max=1, step=0.01),
            _field("Top N", ids.CAMPAIGNS_VALUE_TOP_N, None, "needed for highest CLV; optional for win-back",
                   min=1, step=1),
        ], className="g-2"),
        _guarded(dbc.Button("Download the value audience (CSV)", id=ids.CAMPAIGNS_VALUE_BTN, color="primary",
                            size="sm", disabled=not (can and available)), why_not),
        html.Div(id=ids.CAMPAIGNS_VALUE_MSG, className="small mt-1", role="status"),
        html.Div("ID, segment, group (target or a random holdout of the Holdout share, by segment), probability "
                 "alive, CLV and past value, from the fit stored on the Value page.", className="small text-muted"),
        dcc.Download(id=ids.CAMPAIGNS_VALUE_DOWNLOAD),
    ])], className="shadow-sm mb-3")


def _planner(services, controls, model_note, kpis, curve, seg_table, fitted, options, plans_table, can,
             why_not) -> list:
    """The planner: economics, plan, calibration, recommendations, saved plans and their results."""
    calibration = calibration_figure(fitted.calibration) if fitted is not None else empty_figure("")
    return [
        dbc.Row([
            dbc.Col(controls, xs=12, lg=4),
            dbc.Col([model_note, html.Div(kpis, id=ids.CAMPAIGNS_KPIS),
                     graph_card("Expected profit as customers are added, best first", ids.CAMPAIGNS_CURVE,
                                height=340, figure=curve),
                     graph_card("Calibration: predicted vs observed response by decile", ids.CAMPAIGNS_CALIBRATION,
                                height=300, figure=calibration)], xs=12, lg=8),
        ]),
        dbc.Row([
            dbc.Col(dbc.Card([dbc.CardHeader(html.Span("Plan per segment (95% intervals)", className="fw-semibold")),
                              dbc.CardBody(seg_table, id=ids.CAMPAIGNS_TABLE)], className="shadow-sm mb-3"),
                    xs=12, lg=8),
            dbc.Col(dbc.Card([dbc.CardHeader(html.Span("Products to feature", className="fw-semibold")),
                              dbc.CardBody(_recommendations(services) if fitted is not None else None,
                                           id=ids.CAMPAIGNS_RECOMMENDATIONS)],
                             className="shadow-sm mb-3"), xs=12, lg=4),
        ]),
        dbc.Row([
            dbc.Col(dbc.Card([dbc.CardHeader(html.Span("Saved plans and measured results", className="fw-semibold")),
                              dbc.CardBody([
                                  html.Div(plans_table, id=ids.CAMPAIGNS_PLANS_TABLE, className="mb-2"),
                                  dbc.Label("Plan", html_for=ids.CAMPAIGNS_PLANS, className="small fw-semibold mb-0"),
                                  dcc.Dropdown(id=ids.CAMPAIGNS_PLANS, options=options,
                                               value=options[0]["value"] if options else None, className="mb-2"),
                                  _guarded(dbc.Button("Download audience (CSV)", id=ids.CAMPAIGNS_DOWNLOAD_BTN,
                                                      color="secondary", size="sm", disabled=not can), why_not),
                                  html.Div("ID, segment, group (target or holdout) and propensity; no other field.",
                                           className="small text-muted mb-2"),
                                  _guarded(dcc.Upload(
                                      id=ids.CAMPAIGNS_UPLOAD, multiple=False, disabled=not can,
                                      children=html.Div(["Drop the outcomes file here or ", html.A("choose one", href="#")]
                                                        if can else ["Uploading outcomes is not available to you"]),
                                      className="border border-2 rounded p-2 text-center bg-light small"), why_not),
                                  html.Div("CSV with ID, responded (0 or 1) and optionally revenue, one row per "
                                           "audience member.", className="small text-muted"),
                                  html.Div(id=ids.CAMPAIGNS_RESULTS_FEEDBACK, className="small mt-1", role="status"),
                                  html.Div(_results_view(services, options[0]["value"] if options else None)
                                           if fitted is not None else None,
                                           id=ids.CAMPAIGNS_RESULTS, className="mt-2"),
                              ])], className="shadow-sm mb-3"), xs=12),
        ]),
    ]


@callback(Output(ids.CAMPAIGNS_FEEDBACK, "children"), Output(ids.CAMPAIGNS_KPIS, "children"),
          Output(ids.CAMPAIGNS_CURVE, "figure"), Output(ids.CAMPAIGNS_TABLE, "children"),
          *_FORM, prevent_initial_call=True)
@describes_figures  # the chart summaries and "view as table" follow the figures (issue 16)
def preview(*form):
    """Re-plan as the economics change (nothing is saved)."""
    try:
        return (None, *_views(get_services(), form))
    except CampaignError as exc:
        return f"Not planned: {exc}.", dash.no_update, dash.no_update, dash.no_update


@callback(Output(ids.CAMPAIGNS_SAVED, "data"), Output(ids.CAMPAIGNS_SAVE_FEEDBACK, "children"),
          Input(ids.CAMPAIGNS_SAVE_BTN, "n_clicks"), *[State(i.component_id, i.component_property) for i in _FORM],
          prevent_initial_call=True)
def save(_n, *form):
    """Save the plan the form describes with its audience (analysts; audited)."""
    services = get_services()
    try:
        econ, top_n, segments = parse_form(*form)
        record = as_actor(services.campaigns.save_plan, econ, top_n=top_n, segments=segments)
    except CampaignError as exc:
        return dash.no_update, html.Span(f"Not saved: {exc}.", className="text-danger")
    return record["id"], html.Span(f"Saved plan {record['id']}: target {record['n_targeted']:,}, holdout "
                                   f"{record['n_holdout']:,}.", className="text-success")


@callback(Output(ids.CAMPAIGNS_PLANS, "options"), Output(ids.CAMPAIGNS_PLANS, "value"),
          Output(ids.CAMPAIGNS_PLANS_TABLE, "children"),
          Input(ids.CAMPAIGNS_SAVED, "data"), Input(ids.CAMPAIGNS_RESULTS_STORE, "data"), prevent_initial_call=True)
def show_plans(saved, measured):
    """The saved plans again after a save or an upload; the new plan is selected."""
    services = get_services()
    options, view = _plans_view(services.campaigns.plans(), services.segment_names())
    return options, (saved if dash.ctx.triggered_id == ids.CAMPAIGNS_SAVED else measured) or dash.no_update, view


@callback(Output(ids.CAMPAIGNS_RESULTS, "children"), Input(ids.CAMPAIGNS_PLANS, "value"),
          Input(ids.CAMPAIGNS_RESULTS_STORE, "data"), prevent_initial_call=True)
def show_results(plan_id, _measured):
    """The selected plan's economics and what was measured."""
    return _results_view(get_services(), plan_id)


@callback(Output(ids.CAMPAIGNS_DOWNLOAD, "data"), Input(ids.CAMPAIGNS_DOWNLOAD_BTN, "n_clicks"),
          State(ids.CAMPAIGNS_PLANS, "value"), prevent_initial_call=True)
def download(_n, plan_id):
    """The selected plan's audience (analysts: it is customer IDs)."""
    if not plan_id:
        return dash.no_update
    try:
        text = get_services().campaigns.audience_text(plan_id)
    except CampaignError:
        return dash.no_update
    return dict(content=text, filename=f"{plan_id}-audience.csv", type="text/csv")


@callback(Output(ids.CAMPAIGNS_RESULTS_STORE, "data"), Output(ids.CAMPAIGNS_RESULTS_FEEDBACK, "children"),
          Input(ids.CAMPAIGNS_UPLOAD, "contents"), State(ids.CAMPAIGNS_UPLOAD, "filename"),
          State(ids.CAMPAIGNS_PLANS, "value"), prevent_initial_call=True)
def upload_outcomes(contents, filename, plan_id):
    """Check an outcomes file against the selected plan and save what was measured (analysts; audited)."""
    if not plan_id:
        return dash.no_update, html.Span("Choose a saved plan first.", className="text-danger")
    try:
        as_actor(get_services().campaigns.record_results, plan_id, contents, filename)
    except CampaignError as exc:
        return dash.no_update, html.Span(f"Not saved: {exc}.", className="text-danger")
    return plan_id, html.Span(f"Measured results saved with plan {plan_id}.", className="text-success")


@callback(Output(ids.CAMPAIGNS_VALUE_DOWNLOAD, "data"), Output(ids.CAMPAIGNS_VALUE_MSG, "children"),
          Input(ids.CAMPAIGNS_VALUE_BTN, "n_clicks"), State(ids.CAMPAIGNS_VALUE_TARGET, "value"),
          State(ids.CAMPAIGNS_VALUE_THRESHOLD, "value"), State(ids.CAMPAIGNS_VALUE_TOP_N, "value"),
          State(ids.CAMPAIGNS_HOLDOUT, "value"), State(ids.CAMPAIGNS_SEED, "value"), prevent_initial_call=True)
def value_audience(_n, target, cut, top_n, holdout, seed):
    """A value-targeted audience as CSV (analysts and admins; checked on the server, audited)."""
    from dashboard.auth import current_role
    from dashboard.services.value import ValueUnavailable

    can, why_not = may("campaign")
    if not can:
        return dash.no_update, why_not
    try:
        n = None if top_n in (None, "") else int(float(top_n))
        role = current_role() or "admin"  # an app without sign-in has no roles (may() said yes)
        text, summary = as_actor(get_services().values.audience_csv, target, top_n=n,
                                 p_alive_below=float(cut if cut not in (None, "") else 0.5),
                                 holdout=float(holdout if holdout not in (None, "") else 0.1),
                                 seed=int(seed if seed not in (None, "") else 42), role=role)
    except (CampaignError, ValueUnavailable, ValueError, TypeError, PermissionError) as exc:
        return dash.no_update, f"No audience: {exc}"
    return dcc.send_string(text, f"value-audience-{target}.csv"), summary
