"""Predict (/predict): score a hypothetical customer, explain the answer, compare saved scenarios."""
import json

import dash
import dash_bootstrap_components as dbc
from dash import ALL, Input, Output, State, callback, clientside_callback, ctx, dcc, html

from core.reading.schema import FEATURE_LABELS, LOG_NOTE
from core.versions.scoring import format_value
from core.versions.registry import RegistryError
from dashboard import ids
from dashboard.components import (
    graph_card, model_unavailable, page_header, segment_badge, segment_options, table, describes_figures,
)
from dashboard.figures.common import empty_figure
from dashboard.figures.predict import distance_figure, flip_rows, map_figure, scenario_table
from dashboard.services import get_services

dash.register_page(__name__, path="/predict", name="Predict", order=6, title="SegmentLens · Predict")

_MAX_SCENARIOS = 20
_FIELD = {"type": ids.PREDICT_FIELD, "field": ALL}
_FIELD_FEEDBACK = {"type": ids.PREDICT_FIELD_FEEDBACK, "field": ALL}
_RAW = {"type": ids.PREDICT_RAW_FIELD, "field": ALL}
_RAW_FEEDBACK = {"type": ids.PREDICT_RAW_FEEDBACK, "field": ALL}


def _text(value) -> str:
    """A number as the form shows it (no thousands separators: it must read back as typed)."""
    if value is None:
        return ""
    value = float(value)
    return str(int(value)) if value == int(value) else f"{value:.2f}".rstrip("0").rstrip(".")


def _field(spec: dict, value, input_type: str, feedback_type: str, debounce=300) -> html.Div:
    """One labelled input with its error message and a hint from the data."""
    def show(v):
        return format_value(round(v) if abs(v) >= 100 else round(v, 1))
    hint = (f"typical (25–75 %): {show(spec['q25'])}–{show(spec['q75'])}"
            f" · seen {show(spec['min'])}–{show(spec['max'])}")
    return html.Div([
        # Dash writes a dict id into the page as compact JSON with sorted keys: the label points at that.
        dbc.Label(spec["label"], className="small mb-0", html_for=json.dumps(
            {"field": spec["name"], "type": input_type}, sort_keys=True, separators=(",", ":"))),
        dbc.Input(id={"type": input_type, "field": spec["name"]}, type="text", inputMode="decimal",
                  value=_text(value), debounce=debounce, size="sm", autoComplete="off",
                  placeholder=f"{format_value(spec['low'])}–{format_value(spec['high'])}"),
        dbc.FormFeedback(id={"type": feedback_type, "field": spec["name"]}, type="invalid"),
        dbc.FormText(hint, className="d-block small"),
    ], className="mb-2")


# What each raw-field group is computed by, for the section's words (core.versions.scoring.DERIVATIONS).
_RAW_WORDS = {"Age": ("birth year", "Age = 2026 − birth year"),
              "Total_Spending": ("spend per category", "total spend = sum of the categories")}


def raw_title(groups: list[dict]) -> str:
    """What the raw-fields section asks for: only the raw fields this data has."""
    return ", ".join(_RAW_WORDS.get(g["feature"], (FEATURE_LABELS.get(g["feature"], g["feature"]),))[0]
                     for g in groups)


def raw_rules(groups: list[dict]) -> str:
    """How the section computes each feature it offers."""
    return ", ".join(_RAW_WORDS[g["feature"]][1] for g in groups if g["feature"] in _RAW_WORDS)


def log_note(form: dict):
    """Said once under the fields: which are clustered on a log scale (typed in units all the same)."""
    logged = [f["label"] for f in form["features"] if f.get("logged")]
    if not logged:
        return None
    verb = "is" if len(logged) == 1 else "are"
    return html.P(f"{' and '.join(logged)} {verb} {LOG_NOTE}; type {'it' if len(logged) == 1 else 'them'} as "
                  "counted, the scale is applied for you.",
                  className="small text-muted mb-2", id=ids.PREDICT_LOG_NOTE)


def has_campaigns_or_products(a) -> bool:
    """Whether the version's data has campaign responses or spend per product (the campaigns card's inputs)."""
    return bool(len(a.campaigns)) or bool(getattr(a.lift, "shape", (0, 0))[1])


def largest_segment(sizes) -> int:
    """The segment with the most customers (the lowest number on a tie)."""
    return int(sizes["n"].astype(int).idxmax())


def _start(services, form, segment, customer, largest: int) -> tuple[dict, str]:
    """Values the form opens with: a customer, a segment's typical member, else the largest segment's.

    The typical member (the member nearest the segment's centre) sits well inside its segment, unlike the
    all-medians customer, who falls between segments on this data.
    """
    names = services.segment_names()
    try:
        if customer not in (None, ""):
            return services.customer_fields(customer), f"Customer {customer}."
        if segment not in (None, ""):
            seg = int(segment)
            fields = services.typical_member(seg)
            return fields, f"Typical member of {names[seg]} (customer {fields.get('ID')})."
        fields = services.typical_member(largest)
        return fields, (f"Typical member of {names[largest]}, the largest segment (customer {fields.get('ID')}, "
                        "the closest to its centre). Change any field to see what moves.")
    except (ValueError, IndexError) as exc:
        message = str(exc) if isinstance(exc, ValueError) else f"no segment {segment}"
        return _medians(form), f"{message[:1].upper()}{message[1:]}; showing the median customer instead."


def _medians(form: dict) -> dict:
    values = {f["name"]: f["median"] for f in form["features"]}
    values.update({f["name"]: f["median"] for group in form["raw"] for f in group["fields"]})
    return {k: round(v) if abs(v) >= 10 else round(v, 2) for k, v in values.items()}


def _card(title: str, body_id: str) -> dbc.Card:
    """A titled card whose body a callback fills."""
    return dbc.Card([dbc.CardHeader(html.Span(title, className="fw-semibold")), dbc.CardBody(id=body_id)],
                    className="shadow-sm mb-3")


def layout(segment=None, customer=None, **_query):
    """The what-if page (``?segment=2`` starts from that segment's typical member, ``?customer=ID`` from a customer)."""
    try:
        return _layout(segment=segment, customer=customer, **_query)
    except RegistryError as exc:  # the active model cannot be served (core.versions.registry / services.ModelUnavailable)
        return model_unavailable(exc)


def _layout(segment=None, customer=None, **_query):
    services = get_services()
    form = services.predict_form()
    names = services.segment_names()
    a = services.analysis()
    largest = largest_segment(a.sizes)
    start, message = _start(services, form, segment, customer, largest)
    # The placeholder is a real customer of the data shown (the first row's ID), so trying it works.
    example_id = int(a.frame["ID"].iloc[0]) if "ID" in a.frame and len(a.frame) else None
    cards = has_campaigns_or_products(a)
    fields = [_field(spec, start.get(spec["name"]), ids.PREDICT_FIELD, ids.PREDICT_FIELD_FEEDBACK)
              for spec in form["features"]]
    raw_groups = [html.Div([html.Div(f"→ {FEATURE_LABELS.get(group['feature'], group['feature'])}",
                                     className="small fw-semibold mb-1"),
                            # Read only when the button is pressed: no debounce, so a click right
                            # after typing sees the typed value.
                            *[_field(spec, start.get(spec["name"]), ids.PREDICT_RAW_FIELD, ids.PREDICT_RAW_FEEDBACK,
                                     debounce=False) for spec in group["fields"]]], className="mb-2")
                  for group in form["raw"]]
    prefill = html.Div([
        dbc.Label("Start from a typical member of", className="small mb-0"),
        dbc.InputGroup([
            dcc.Dropdown(id=ids.PREDICT_PREFILL_SEGMENT, options=segment_options(names), clearable=False,
                         value=int(segment) if str(segment or "").isdigit() and int(segment) < len(names) else largest,
                         style={"flex": "1 1 auto", "minWidth": "10rem"}),
            dbc.Button("Use", id=ids.PREDICT_PREFILL_SEGMENT_BTN, color="primary", size="sm"),
        ], size="sm", className="mb-2 flex-nowrap"),
        dbc.Label("… or an existing customer (ID)", className="small mb-0"),
        dbc.InputGroup([
            dbc.Input(id=ids.PREDICT_PREFILL_CUSTOMER, type="text", inputMode="numeric", size="sm",
                      placeholder=f"e.g. {example_id}" if example_id is not None else "customer ID",
                      value=str(customer) if customer else "", autoComplete="off"),
            dbc.Button("Load", id=ids.PREDICT_PREFILL_CUSTOMER_BTN, color="primary", size="sm"),
        ], size="sm", className="mb-1"),
        html.Div(message, id=ids.PREDICT_PREFILL_MESSAGE, className="small text-muted mb-2", role="status"),
    ])
    raw = dbc.Accordion([dbc.AccordionItem([
        html.P("Type the raw fields; the features are computed from them as in the data "
               f"({raw_rules(form['raw'])}).", className="small text-muted"),
        *raw_groups,
        dbc.Button("Compute the features from these", id=ids.PREDICT_RAW_APPLY, size="sm", color="primary"),
    ], title=f"From raw fields ({raw_title(form['raw'])})")], start_collapsed=True, className="mb-2",
        id=ids.PREDICT_RAW_SECTION) \
        if form["raw"] else html.Div(  # no raw fields behind these features: the callback's input id stays
            dbc.Button(id=ids.PREDICT_RAW_APPLY, disabled=True), style={"display": "none"})
    form_card = dbc.Card(dbc.CardBody([html.H2("Hypothetical customer", className="h6"), prefill, html.Hr(),
                                       *fields, log_note(form), raw]), className="shadow-sm mb-3")
    scenarios = dbc.Card([
        dbc.CardHeader(html.Span("Scenarios side by side", className="fw-semibold")),
        dbc.CardBody([
            dbc.InputGroup([
                dbc.Input(id=ids.PREDICT_SCENARIO_NAME, placeholder="Scenario name (optional)", maxLength=40,
                          size="sm"),
                dbc.Button("Save scenario", id=ids.PREDICT_SAVE, color="primary", size="sm"),
                dbc.Button("Clear", id=ids.PREDICT_CLEAR, color="secondary", size="sm"),
                dbc.Button("Download CSV", id=ids.PREDICT_DOWNLOAD_BTN, color="secondary", size="sm"),
            ], size="sm", className="mb-2"),
            html.Div(id=ids.PREDICT_SAVE_MESSAGE, className="small text-muted mb-2", role="status"),
            html.Div(id=ids.PREDICT_SCENARIO_TABLE),
            dcc.Download(id=ids.PREDICT_DOWNLOAD),
        ]),
    ], className="shadow-sm mb-3")
    return html.Div([
        page_header("Predict", "Which segment would this customer join, how clearly, and what would change it?",
                    basis=a.basis),
        dcc.Store(id=ids.PREDICT_CURRENT),
        dcc.Store(id=ids.PREDICT_SCENARIOS, storage_type="session", data=[]),
        dcc.Store(id=ids.PREDICT_URL_QUERY), dcc.Store(id=ids.PREDICT_URL_SYNC),
        dbc.Row([
            # On a phone the columns stack: the compact answer stays in view above the fields while they scroll.
            dbc.Col([html.Div(id=ids.PREDICT_RESULT_COMPACT, className="d-lg-none sticky-top predict-compact mb-2",
                              **{"aria-live": "polite"}),
                     form_card], lg=4, xl=3),
            dbc.Col([
                html.Div(dbc.Card(dbc.CardBody(id=ids.PREDICT_RESULT), className="shadow-sm mb-3"),
                         **{"aria-live": "polite"}),
                dbc.Row([
                    dbc.Col(graph_card("Distance to every segment", ids.PREDICT_DISTANCES, height=300), xl=5),
                    dbc.Col(graph_card("Among existing customers (PCA map)", ids.PREDICT_MAP, height=360), xl=7),
                ]),
                dbc.Row([
                    dbc.Col(_card("What would change the segment", ids.PREDICT_FLIPS), xl=7 if cards else 12),
                    # Only when the data has campaign responses or spend per product (issue 30).
                    dbc.Col(_card("Campaigns and products", ids.PREDICT_CAMPAIGN), xl=5) if cards else
                    html.Div(id=ids.PREDICT_CAMPAIGN, hidden=True),
                ]),
                scenarios,
            ], lg=8, xl=9),
        ]),
    ])


# ---------------------------------------------------------------- pieces of the answer
def _result(r: dict) -> list:
    """Headline, segment badge, confidence and typicality in plain words."""
    seg, words = r["segment"], r["words"]
    return [
        html.Div(words["headline"], className="h5 mb-2"),
        html.Div([html.Span("Segment ", className="text-muted"),
                  html.Span(segment_badge(seg, r["name"], href=f"/profiles?segment={seg}"),
                            id=ids.PREDICT_SEGMENT_NAME),
                  html.Span(f"  #{seg}", className="text-muted small")], className="mb-2"),
        html.Div([html.Strong("Confidence "), html.Span(f"{r['confidence']:.2f}", id=ids.PREDICT_CONFIDENCE),
                  html.Span(f" — {words['confidence_text']}.", className="text-muted")], className="small"),
        html.Div([html.Strong("Typicality "), html.Span(f"{r['typicality']:.2f}"),
                  html.Span(f" — {words['typicality_text']}.", className="text-muted")], className="small"),
    ]


def _compact(r: dict) -> dbc.Card:
    """The answer in one line, for phones, where the full answer is below the form."""
    seg = r["segment"]
    return dbc.Card(dbc.CardBody([
        html.Span("Joins ", className="text-muted small"), segment_badge(seg, r["name"]),
        html.Span(f" · confidence {r['confidence']:.2f}", className="small"),
    ], className="py-2 px-3"), className="shadow-sm")


def _campaign(card: dict, name: str) -> list:
    """The segment's response to campaigns and the products it over-buys."""
    out = [html.P([html.Strong(name), f": {card['description']}"], className="small")]
    resp = card.get("response")
    if resp:
        out.append(html.P(f"Accepted the last campaign: {resp['rate']:.0%} of the segment "
                          f"(95 % interval {resp['low']:.0%}–{resp['high']:.0%}, {resp['n']:,} customers).",
                          className="small mb-1"))
    if card.get("campaigns"):
        out.append(html.P("Earlier campaigns: " + ", ".join(
            f"{c['campaign'].replace('AcceptedCmp', 'no. ')} {c['rate']:.0%}" for c in card["campaigns"]) + ".",
            className="small text-muted"))
    if not resp and not card.get("campaigns"):
        out.append(html.P("The data has no campaign responses.", className="small text-muted"))
    products = card.get("products") or []
    out.append(html.Div([html.Strong("Recommend: ", className="small"), *[
        html.Span(f"{p['product'].replace('Products', '').replace('Prods', '')} ×{p['lift']:.1f}",
                  className="badge bg-light text-dark border me-1")
        for p in products]] if products else
        html.Span("No product category stands out for this segment.", className="small text-muted")))
    if products:
        out.append(html.Div("×: share of the segment's spend relative to all customers'.",
                            className="small text-muted mt-1"))
    return out


@callback(
    Output(_FIELD, "invalid"), Output(_FIELD_FEEDBACK, "children"), Output(ids.PREDICT_RESULT, "children"),
    Output(ids.PREDICT_DISTANCES, "figure"), Output(ids.PREDICT_MAP, "figure"), Output(ids.PREDICT_FLIPS, "children"),
    Output(ids.PREDICT_CAMPAIGN, "children"), Output(ids.PREDICT_CURRENT, "data"),
    Output(ids.PREDICT_RESULT_COMPACT, "children"),
    Input(_FIELD, "value"),
)
@describes_figures  # the chart summaries and "view as table" follow the figures (issue 16)
def predict(values):
    """Score the form's customer; invalid fields get a message and there is no answer."""
    features = [item["id"]["field"] for item in ctx.inputs_list[0]]
    services = get_services()
    r = services.what_if(dict(zip(features, values)))
    errors = r["errors"]
    if errors:
        none = empty_figure("Fix the form first", height=300)
        waiting = html.Div("No answer until every field is valid.", className="small text-muted")
        return ([f in errors for f in features], [errors.get(f, "") for f in features],
                dbc.Alert(f"Fix the highlighted field{'s' if len(errors) > 1 else ''} to see the answer.",
                          color="warning", className="mb-0"), none, none, waiting, waiting, None,
                dbc.Alert("Fix the highlighted fields to see the answer.", color="warning", className="py-2 mb-0"))
    names = r["names"]
    flips = [html.P("Each feature moved on its own, the others held; searched within the range seen in the data "
                    "(or up to the value entered).", className="small text-muted"),
             table(flip_rows(r["flips"], names), index=False, class_name="small")]
    current = {"model_version": r["version"], "segment": r["segment"], "segment_name": r["name"],
               "confidence": round(r["confidence"], 4), "typicality": round(r["typicality"], 4), **r["values"]}
    return ([False] * len(features), [""] * len(features), _result(r),
            distance_figure(r["distances"], names, r["segment"]),
            map_figure(services.map_background(), names, r["point"], r["segment"]),
            flips, _campaign(r["card"], r["name"]), current, _compact(r))


@callback(
    Output(_FIELD, "value"), Output(_RAW, "value"), Output(_RAW, "invalid"), Output(_RAW_FEEDBACK, "children"),
    Output(ids.PREDICT_PREFILL_MESSAGE, "children"), Output(ids.PREDICT_URL_QUERY, "data"),
    Input(ids.PREDICT_PREFILL_SEGMENT_BTN, "n_clicks"), Input(ids.PREDICT_PREFILL_CUSTOMER_BTN, "n_clicks"),
    Input(ids.PREDICT_PREFILL_CUSTOMER, "n_submit"), Input(ids.PREDICT_RAW_APPLY, "n_clicks"),
    State(ids.PREDICT_PREFILL_SEGMENT, "value"), State(ids.PREDICT_PREFILL_CUSTOMER, "value"),
    State(_FIELD, "value"), State(_RAW, "value"),
    prevent_initial_call=True,
)
def prefill(_seg_clicks, _cust_clicks, _cust_submit, _raw_clicks, segment, customer, field_values, raw_values):
    """Fill the form from a segment's typical member, an existing customer, or the raw fields."""
    services = get_services()
    features = [item["id"]["field"] for item in ctx.states_list[2]]
    raw_names = [item["id"]["field"] for item in ctx.states_list[3]]
    # Wildcard outputs take one value per component, no_update included.
    keep_fields, keep_raw = [dash.no_update] * len(features), [dash.no_update] * len(raw_names)
    if ctx.triggered_id == ids.PREDICT_RAW_APPLY:
        derived, errors = services.derive_features(dict(zip(raw_names, raw_values)))
        values = [_text(derived[f]) if f in derived else v for f, v in zip(features, field_values)]
        labels = [FEATURE_LABELS.get(f, f) for f in features if f in derived]
        message = (f"Computed {' and '.join(f'“{label}”' for label in labels)} from the raw fields." if derived else
                   "Fix the highlighted raw fields first.")
        return (values, keep_raw, [n in errors for n in raw_names], [errors.get(n, "") for n in raw_names], message,
                dash.no_update)
    try:
        if ctx.triggered_id == ids.PREDICT_PREFILL_SEGMENT_BTN:
            fields = services.typical_member(int(segment or 0))
            message = (f"Typical member of {services.segment_names()[int(segment or 0)]} "
                       f"(customer {fields.get('ID')}, the closest to the segment's centre).")
            query = {"segment": int(segment or 0)}
        else:
            fields = services.customer_fields(customer)
            message = f"Customer {fields.get('ID')}."
            query = {"customer": fields.get("ID")}
    except ValueError as exc:
        return keep_fields, keep_raw, keep_raw, keep_raw, html.Span(str(exc), className="text-danger"), dash.no_update
    return ([_text(fields.get(f)) for f in features], [_text(fields.get(n)) for n in raw_names],
            [False] * len(raw_names), [""] * len(raw_names), message, query)


@callback(
    Output(ids.PREDICT_SCENARIOS, "data"), Output(ids.PREDICT_SAVE_MESSAGE, "children"),
    Input(ids.PREDICT_SAVE, "n_clicks"), Input(ids.PREDICT_CLEAR, "n_clicks"),
    State(ids.PREDICT_CURRENT, "data"), State(ids.PREDICT_SCENARIO_NAME, "value"), State(ids.PREDICT_SCENARIOS, "data"),
    prevent_initial_call=True,
)
def save_scenario(_save, _clear, current, name, scenarios):
    """Add the current customer to the saved scenarios (or clear them)."""
    if ctx.triggered_id == ids.PREDICT_CLEAR:
        return [], "Scenarios cleared."
    scenarios = list(scenarios or [])
    if not current:
        return dash.no_update, "Nothing to save: fix the highlighted fields first."
    if len(scenarios) >= _MAX_SCENARIOS:
        return dash.no_update, f"At most {_MAX_SCENARIOS} scenarios; clear some first."
    label = " ".join(str(name or "").split())[:40] or f"Scenario {len(scenarios) + 1}"
    scenarios.append({"scenario": label, **current})
    return scenarios, f"Saved “{label}”."


@callback(Output(ids.PREDICT_SCENARIO_TABLE, "children"), Input(ids.PREDICT_SCENARIOS, "data"))
def show_scenarios(scenarios):
    """The saved scenarios as columns of one table."""
    if not scenarios:
        return html.Div("No scenario saved yet: adjust the customer, then Save scenario to compare several.",
                        className="small text-muted")
    features = [f["name"] for f in get_services().predict_form()["features"]]
    return table(scenario_table(scenarios, features), index=True, class_name="small")


@callback(Output(ids.PREDICT_DOWNLOAD, "data"), Input(ids.PREDICT_DOWNLOAD_BTN, "n_clicks"),
          State(ids.PREDICT_SCENARIOS, "data"), prevent_initial_call=True)
def download(_n, scenarios):
    """Saved scenarios as spreadsheet-safe CSV."""
    if not scenarios:
        return dash.no_update
    return dict(content=get_services().scenarios_csv(scenarios), filename="segmentlens_scenarios.csv",
                type="text/csv")


# The chosen start goes into the address bar (?segment=i or ?customer=ID), so a reload or a shared link opens on
# it. replaceState does not notify dcc.Location: the page is not rebuilt, the form keeps what the click filled in.
clientside_callback(
    """
    function(query) {
        if (!query || !/\\/predict\\/?$/.test(window.location.pathname)) {
            return window.dash_clientside.no_update;
        }
        const params = new URLSearchParams();
        if (query.customer !== undefined && query.customer !== null) {
            params.set('customer', String(query.customer));
        } else if (query.segment !== undefined && query.segment !== null) {
            params.set('segment', String(query.segment));
        }
        const search = params.toString();
        window.history.replaceState(window.history.state, '', window.location.pathname + (search ? '?' + search : ''));
        return search;
    }
    """,
    Output(ids.PREDICT_URL_SYNC, "data"), Input(ids.PREDICT_URL_QUERY, "data"), prevent_initial_call=True,
)
