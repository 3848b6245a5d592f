"""Build the Dash app: pages, local Bootstrap theme, shared cache, services, API."""
from __future__ import annotations

import os
from pathlib import Path

import dash
import dash_bootstrap_components as dbc
import flask
from dash import Input, Output, dcc, html
from flask_caching import Cache

from core.registry import Registry

from . import ids
from .api import register_api
from .components import navbar
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

    return dash.DiskcacheManager(diskcache.Cache(str(cache_dir / "background")))


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
    services = Services(Registry(models_dir), cache, data_path)
    server.extensions["segmentlens"] = services
    register_api(server, cache_dir)  # /api/v1 (SEGMENTLENS_RATE_LIMIT, SEGMENTLENS_MAX_BODY, SEGMENTLENS_MAX_BATCH)
    if train_if_missing:
        services.ensure_model()

    app = dash.Dash(
        __name__, server=server, use_pages=True, pages_folder=str(_HERE / "pages"),
        assets_folder=str(_HERE.parent / "assets"),
        external_stylesheets=[f"{_BOOTSTRAP_URL}/css/bootswatch/{BOOTSWATCH_THEME}/bootstrap.min.css"],
        suppress_callback_exceptions=True, title="SegmentLens", update_title=None,
        background_callback_manager=_background_manager(cache_dir),
        meta_tags=[{"name": "viewport", "content": "width=device-width, initial-scale=1"}],
    )
    app.layout = lambda: html.Div([
        dcc.Location(id=ids.URL),
        navbar(),
        dbc.Container(dash.page_container, fluid=True, id=ids.PAGE_CONTAINER, className="pb-4"),
    ])
    _register_shell_callbacks(app)
    return app


def _register_shell_callbacks(app: dash.Dash) -> None:
    @app.callback(Output(ids.NAV_STATUS, "children"), Input(ids.URL, "pathname"))
    def show_status(_pathname):
        from .services import get_services

        services = get_services()
        _, meta = services.model()  # the model the pages show: the last good one if the active file is bad
        warning = services.model_warning()
        status = [html.Span(f"Data: {meta.get('data_source', '?')}", className="me-2"),
                  html.Span(f"Model {meta['version']} · k={meta.get('k')}", className="badge bg-secondary")]
        if warning:
            status.append(dcc.Link(html.Span(f"⚠ showing {meta['version']}: the active model cannot be used", title=warning,
                                             className="badge bg-warning text-dark ms-2"),
                                   href="/data", id=ids.NAV_MODEL_WARNING))
        return status

    @app.callback(Output(ids.NAV, "is_open"), Input(ids.NAV_TOGGLER, "n_clicks"),
                  dash.State(ids.NAV, "is_open"), prevent_initial_call=True)
    def toggle_nav(n, is_open):
        return not is_open if n else is_open
