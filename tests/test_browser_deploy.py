"""The deployed shape in a real browser: the Procfile's gunicorn (gevent workers) runs background jobs."""
from __future__ import annotations

import pytest

from dashboard import ids
from tests.conftest import console_errors, start_server
from tests.test_browser_explorer_diagnostics import _set_range_input

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def gunicorn_server(tmp_path_factory, warm_models):
    server = start_server(tmp_path_factory.mktemp("deploy-browser"), gunicorn=True, models_from=warm_models)
    yield server
    server.stop()


def test_a_background_sweep_runs_to_the_end_under_gunicorn(dash_br, gunicorn_server):
    """Background callbacks fork a job process from a gevent worker and are polled by either worker."""
    dash_br.wait_for_page(url=gunicorn_server.url + "/diagnostics")
    dash_br.wait_for_contains_text(f"#{ids.DIAG_RECOMMENDATION}", "Recommended k=", timeout=60)
    _set_range_input(dash_br, 1, 6)
    _set_range_input(dash_br, 0, 3)
    dash_br.find_element(f"#{ids.DIAG_RUN}").click()
    dash_br.wait_for_contains_text(f"#{ids.DIAG_STATUS}", "Showing k=3 to 6", timeout=90)
    rows = dash_br.find_elements(f"#{ids.DIAG_TABLE} tbody tr")
    assert [r.find_element("css selector", "td").text for r in rows] == ["3", "4", "5", "6"]
    assert console_errors(dash_br) == []
