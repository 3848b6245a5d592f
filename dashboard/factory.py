"""Build the Dash app: pages, local Bootstrap theme, shared cache, services, API."""
from __future__ import annotations

import os
from pathlib import Path

import dash
import dash_bootstrap_components as dbc
import flask
from dash import ALL, Input, Output, dcc, html
from flask_caching import Cache

from core.access.accounts import AccountStore, Forbidden, bootstrap_admin, secret_key
from core.versions.registry import Registry, RegistryError

from . import ids
from .api import register_api
from .api_fast import install_keyed_predict
from .auth import LOGOUT_PATH, header_identity, install_auth
from .components import navbar
from .security import install_security, slim_validation_layout
from .services import CACHE_DIR, Services
from .theme import BOOTSWATCH_THEME

__all__ = ["create_app"]

_HERE = Path(__file__).resolve().parent
_BOOTSTRAP_URL = "/vendor/bootstrap"


def _bootstrap_blueprint() -> flask.Blueprint:
    """Serve Bootstrap/Bootswatch from the installed Bootstrap-Flask wheel (no CDN, no committed copy)."""
    import flask_bootstrap

    static = Path(flask_bootstrap.__file__).resolve().parent / "static" / "bootstrap5"
    return flask.Blueprint("vendor_bootstrap", __name__, static_folder=str(static), static_url_path=_BOOTSTRAP_URL)


def _background_manager(cache_dir: Path):
    import diskcache

    from .monitoring import TimedDiskcacheManager

    # Dash's DiskcacheManager, timing each job into segmentlens_job_duration_seconds (/metrics).
    return TimedDiskcacheManager(diskcache.Cache(str(cache_dir / "background")), cache_dir)


def create_app(*, models_dir: str | os.PathLike | None = None, data_path: str | os.PathLike | None = None,
               cache_dir: str | os.PathLike | None = None, train_if_missing: bool = True) -> dash.Dash:
    """Create the dashboard (and API) on one Flask server.

    Parameters are optional overrides of SEGMENTLENS_MODELS, SEGMENTLENS_DATA and
    SEGMENTLENS_CACHE_DIR. With no model yet, one is trained on the configured data.
    """
    # Background callbacks run in other processes that rebuild Services from the environment
    # (Services.from_env), so explicit overrides must reach the environment too.
    for variable, value in (("SEGMENTLENS_MODELS", models_dir), ("SEGMENTLENS_DATA", data_path),
                            ("SEGMENTLENS_CACHE_DIR", cache_dir)):
        if value:
            os.environ[variable] = str(value)
    cache_dir = Path(cache_dir or os.environ.get("SEGMENTLENS_CACHE_DIR") or CACHE_DIR)
    cache_dir.mkdir(parents=True, exist_ok=True)
    server = flask.Flask("segmentlens", root_path=str(_HERE.parent))
    server.register_blueprint(_bootstrap_blueprint())
    cache = Cache(server, config={
        # On disk so that every gunicorn worker shares what one of them computed.
        "CACHE_TYPE": "FileSystemCache", "CACHE_DIR": str(cache_dir / "results"),
        "CACHE_DEFAULT_TIMEOUT": 0, "CACHE_THRESHOLD": 200,
    })
    registry = Registry(models_dir)
    services = Services(registry, cache, data_path)
    server.extensions["segmentlens"] = services
    registry.root.mkdir(parents=True, exist_ok=True)
    secret = secret_key(registry.root)  # SEGMENTLENS_SECRET_KEY, else one generated once beside the registry
    bootstrap_admin(AccountStore(registry.root))  # SEGMENTLENS_ADMIN_PASSWORD on a first start
    register_api(server, cache_dir)  # /api/v1 (SEGMENTLENS_RATE_LIMIT, SEGMENTLENS_MAX_BODY, SEGMENTLENS_MAX_BATCH)
    install_keyed_predict(server)  # keyed predictions beneath Flask's hooks (inside the security middleware)
    if train_if_missing and registry.active_version() is None:
        import sys

        print(f"SegmentLens: no model yet; training the first one on {services.configured_data().name} "
              "(about a second on the sample) ...", file=sys.stderr, flush=True)
        version = services.ensure_model()
        print(f"SegmentLens: model {version} trained and active.", file=sys.stderr, flush=True)

    stylesheet = f"{_BOOTSTRAP_URL}/css/bootswatch/{BOOTSWATCH_THEME}/bootstrap.min.css"
    server.extensions["segmentlens_stylesheet"] = stylesheet  # the sign-in page uses the same theme
    # No suppress_callback_exceptions: Dash builds a validation layout from every page's layout, so a
    # callback naming an id that no layout has fails (tests/test_architecture.py), not only in a browser.
    app = dash.Dash(
        __name__, server=server, use_pages=True, pages_folder=str(_HERE / "pages"),
        assets_folder=str(_HERE.parent / "assets"),
        external_stylesheets=[stylesheet],
        title="SegmentLens", update_title=None,
        background_callback_manager=_background_manager(cache_dir),
        meta_tags=[{"name": "viewport", "content": "width=device-width, initial-scale=1"}],
    )
    # Landmarks (issue 16): a skip link first in the tab order, the navbar in <header>, the page in one <main>.
    app.layout = lambda: html.Div([
        dcc.Location(id=ids.URL),
        html.A("Skip to content", href=f"#{ids.MAIN_CONTENT}", id=ids.SKIP_LINK,
               className="visually-hidden-focusable skip-link"),
        html.Header(navbar()),
        html.Main(dbc.Container([html.Div(id=ids.APP_BANNER), dash.page_container], fluid=True,
                                id=ids.PAGE_CONTAINER, className="pb-4"), id=ids.MAIN_CONTENT, tabIndex="-1"),
    ])
    # The page's language declared on Dash's template (screen readers pick their voice from it).
    app.index_string = app.index_string.replace("<html>", '<html lang="en">', 1)
    _guard_page_layouts()

    @server.errorhandler(RegistryError)
    def model_unavailable(exc):
        # A callback that needs the model while none can be served: a clear 503, not a 500 and a traceback.
        return flask.jsonify(error="model_unavailable", message=str(exc), status=503), 503

    @server.errorhandler(Forbidden)
    def forbidden(exc):
        # A service refused the caller's role (it audited the refusal): whatever route or callback asked.
        return flask.jsonify(error="forbidden", message=str(exc), status=403), 403
    _register_shell_callbacks(app)
    # Order matters: body limits run before the sign-in guard, which reads callback bodies.
    install_security(app, secret)
    install_auth(server, registry.root, cache_dir, secret, lambda: app.callback_map)
    _first_request(app)
    return app


def _first_request(app: dash.Dash) -> None:
    """Make Dash's first request here, before the server takes visitors.

    On its first request Dash registers the page routes and builds the validation layout by calling
    every page's layout (seconds of work). A visitor arriving while that runs would get a page whose
    callbacks are checked against the shell alone (hundreds of "ID not found" errors), and the first
    visitor would pay for the work: both are avoided by doing it once, now.
    """
    # The active version's precomputed views (core/versions/views.py) make the pages' layouts cheap; a version
    # without them gets them now, at start, not on a visitor's request.
    app.server.extensions["segmentlens"].analyses.ensure_views()
    response = app.server.test_client().get("/", headers={"User-Agent": "segmentlens-startup"})
    if response.status_code not in (200, 302):  # 302: sign-in required; a failing layout is a bug tests catch
        raise RuntimeError(f"the dashboard failed its first request ({response.status_code})")
    # Every page's HTML carries the validation layout: its ids are what the browser checks, not ~0.5 MB of figures.
    app.validation_layout = slim_validation_layout(app.validation_layout)


def _register_shell_callbacks(app: dash.Dash) -> None:
    # The model-changed stores sit on pages that change the active model (/data): the header follows
    # an activation or roll-back at once, not only on the next navigation.
    @app.callback(Output(ids.NAV_STATUS, "children"), Output(ids.APP_BANNER, "children"),
                  Input(ids.URL, "pathname"), Input({"type": ids.MODEL_CHANGED, "scope": ALL}, "data"))
    def show_status(_pathname, _changed):
        from .services import get_services

        return _status_view(get_services()), _banner_view(get_services())

    @app.callback(Output(ids.NAV, "is_open"), Input(ids.NAV_TOGGLER, "n_clicks"),
                  dash.State(ids.NAV, "is_open"), prevent_initial_call=True)
    def toggle_nav(n, is_open):
        return not is_open if n else is_open


def _identity_view() -> list:
    """Who is signed in, with the sign-out button; or the mode the server runs in."""
    who = header_identity()
    if who["mode"] == "open":
        return [html.Span("Local mode (no accounts)", className="badge bg-light text-dark border me-2",
                          title="Nobody signs in while no accounts exist and the server listens on this machine only.")]
    if who["mode"] == "read-only":
        return [html.Span("Read-only: no accounts yet", className="badge bg-warning text-dark me-2")]
    if not who["name"]:
        return []
    return [html.Span([who["name"], " · ", who["role"]], className="me-2", id=ids.NAV_USER),
            html.Form([dcc.Input(type="hidden", name="csrf", value=who["csrf"]),
                       html.Button("Sign out", type="submit", className="btn btn-sm btn-outline-secondary")],
                      action=LOGOUT_PATH, method="POST", className="d-inline me-2")]


def _status_view(services) -> list:
    """The header's right side: identity, data source and the served model version."""
    status = services.status()
    out = _identity_view()
    serving = status.get("serving")
    if serving:
        meta = services.registry.metadata(serving)
        out += [html.Span(f"Data: {meta.get('data_source', '?')}", className="me-2"),
                html.Span(f"Model {serving} · k={meta.get('k')}", className="badge bg-secondary", id=ids.NAV_MODEL)]
    if status.get("status") != "ok":
        out.append(dcc.Link(html.Span("⚠ model unavailable", className="badge bg-warning text-dark ms-2"),
                            href="/data", id=ids.NAV_MODEL_WARNING))
    return out


def _banner_view(services):
    """A banner on every page while the active model is not what is served, and in read-only mode."""
    from .auth import ADD_ADMIN_HINT

    banners = []
    status = services.status()
    if status.get("status") != "ok":
        banners.append(dbc.Alert([html.Strong("The active model cannot be served. "), status.get("reason") or "",
                                  " An admin can activate another version on ", dcc.Link("Data & models", href="/data"),
                                  "."], color="warning", className="mb-3", id=ids.APP_BANNER_MODEL))
    if header_identity()["mode"] == "read-only":
        banners.append(dbc.Alert(["This server listens on the network and has no accounts yet, so it is read-only. "
                                  "Add an admin with ", html.Code(ADD_ADMIN_HINT, className="text-body"), " and restart."],
                                 color="info", className="mb-3"))
    return banners


def _guard_page_layouts() -> None:
    """Wrap every page's layout so a model that cannot be served gives a message, never a 500.

    Dash calls every page's layout on a worker's first request to build the validation layout;
    one layout raising there would fail that request and leave page routing half set up.
    """
    import functools

    from core.versions.registry import RegistryError

    for page in dash.page_registry.values():
        layout = page.get("layout")  # None for a page module imported under another name (not served)
        if not callable(layout) or getattr(layout, "_segmentlens_guarded", False):
            continue

        @functools.wraps(layout)
        def guarded(*args, _layout=layout, **kwargs):
            try:
                return _layout(*args, **kwargs)
            except RegistryError as exc:  # ModelUnavailable included: the banner says the rest
                return dbc.Alert(["This page needs the active model, which cannot be served: ", str(exc),
                                  " An admin can activate another version on ", dcc.Link("Data & models", href="/data"),
                                  "."], color="warning", className="mt-3")
            except KeyError as exc:
                # A model trained on another layout of data (a transaction log's RFM customers, a CRM
                # table) lacks columns some sections of this page were built for.
                column = exc.args[0] if exc.args else "?"
                flask.current_app.logger.warning("page %s: column %r missing from the model's data",
                                                 getattr(_layout, "__module__", "?"), column)
                return dbc.Alert([f"This page is built for customer files with a “{column}” column, which the "
                                  "active model's data does not have. The other pages show this model; see ",
                                  dcc.Link("Data & models", href="/data"), " for what was mapped."],
                                 color="info", className="mt-3")

        guarded._segmentlens_guarded = True
        page["layout"] = guarded
