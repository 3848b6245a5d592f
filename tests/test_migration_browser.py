"""The /stability page of a version trained on an order log, in headless Chromium: segments over time."""
from __future__ import annotations

import re
from pathlib import Path

import pytest
from dash.testing.wait import until

from core.versions.registry import Registry
from dashboard import ids
from tests.conftest import console_errors, start_server

CDNOW = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cdnow_transactions.txt"


@pytest.fixture(scope="module")
def log_server(tmp_path_factory, cdnow_trained_models):
    """The app on a copy of the registry trained once on the CDNOW log (tests/conftest.py)."""
    tmp = tmp_path_factory.mktemp("migration-browser")
    srv = start_server(tmp, data=CDNOW.resolve(), models_from=cdnow_trained_models)
    srv.meta = Registry(srv.models_dir).metadata(Registry(srv.models_dir).active_version())
    yield srv
    srv.stop()


def _figure(dash_br, graph_id: str) -> dict:
    return dash_br.driver.execute_script(
        "const el = document.querySelector(arguments[0] + ' .js-plotly-plot');"
        "return el ? {data: el.data, layout: el.layout} : null;", f"#{graph_id}")


def _select(dash_br, cid: str, value: str) -> None:
    dash_br.driver.execute_script(
        "const s = document.getElementById(arguments[0]);"
        "const set = Object.getOwnPropertyDescriptor(HTMLSelectElement.prototype, 'value').set;"
        "set.call(s, arguments[1]); s.dispatchEvent(new Event('change', {bubbles: true}));", cid, value)


def _only_movers(text: str, source: str, target: str) -> bool:
    """The movers' text lists customers, and each of them moved from ``source`` to ``target``."""
    rows = text.split("\n")[2:]  # a headline, the column names, then one line per customer
    return "customers moved" in text and bool(rows) and all(
        re.match(rf"\S+ {re.escape(source)} {re.escape(target)} ", row) for row in rows)


@pytest.mark.browser
def test_log_version_shows_migration_instead_of_enrolment_cohorts(dash_br, log_server):
    dash_br.wait_for_page(url=log_server.url + "/stability")
    dash_br.wait_for_element(f"#{ids.MIGRATION_SANKEY} .main-svg", timeout=60)
    dash_br.wait_for_element(f"#{ids.STABILITY_JACCARD} .main-svg", timeout=60)
    # The cohort section stays for customer tables only.
    assert not dash_br.driver.find_elements("css selector", f"#{ids.STABILITY_COHORTS}")
    sankey = _figure(dash_br, ids.MIGRATION_SANKEY)
    assert sankey["data"][0]["type"] == "sankey"
    dates = [a["text"] for a in sankey["layout"]["annotations"]]
    assert dates == ["1997-11-30", "1997-12-31", "1998-01-31", "1998-02-28", "1998-03-31", "1998-04-30",
                     "1998-05-31", "1998-06-30"]
    assert "went from" in dash_br.find_element(f"#{ids.MIGRATION_HEADLINES}").text
    sizes = _figure(dash_br, ids.MIGRATION_SIZES)
    assert len(sizes["data"]) == 6 and len(sizes["data"][0]["x"]) == 18
    last = sum(trace["y"][-1] for trace in sizes["data"])
    assert last == 23570
    # The transition table of the last month: its grand total is every customer.
    table_text = dash_br.find_element(f"#{ids.MIGRATION_TABLE}").text
    assert "1998-05-31" in table_text and "23,570" in table_text

    # Movers of the last month, then only those from segment 1 to segment 0.
    dash_br.wait_for_contains_text(f"#{ids.MIGRATION_MOVERS}", "customers moved between 1998-05-31 and 1998-06-30",
                                   timeout=60)
    names = log_server.meta["segment_names"]
    _select(dash_br, ids.MIGRATION_FROM_SEGMENT, "1")
    _select(dash_br, ids.MIGRATION_TO_SEGMENT, "0")
    # Until every row shown is a mover from segment 1 to segment 0 (the unfiltered list may name both already).
    until(lambda: _only_movers(dash_br.find_element(f"#{ids.MIGRATION_MOVERS}").text, names[1], names[0]), timeout=30)
    text = dash_br.find_element(f"#{ids.MIGRATION_MOVERS}").text
    assert names[0] in text and names[2] not in text.split("\n", 1)[1].replace(names[0], "")
    shown = int(text.split(" customers moved")[0].replace(",", ""))
    # The same count as the table's cell (row 1, column 0) for that month.
    cells = [row.text for row in dash_br.driver.find_elements("css selector", f"#{ids.MIGRATION_TABLE} tbody tr")]
    row1 = [c for c in cells if c.startswith(f"1 · {names[1]}")][0]
    assert int(row1[len(f"1 · {names[1]}"):].split()[0].replace(",", "")) == shown

    # Quarterly snapshots.
    radio = dash_br.find_element(f"#_dbcprivate_radioitems_{ids.MIGRATION_EVERY}_input_quarter")
    dash_br.driver.execute_script("arguments[0].scrollIntoView({block: 'center'}); arguments[0].click();", radio)
    until(lambda: [a["text"] for a in _figure(dash_br, ids.MIGRATION_SANKEY)["layout"]["annotations"]][0]
          == "1997-03-31", timeout=60)
    options = [o.get_attribute("value") for o in
               dash_br.driver.find_elements("css selector", f"#{ids.MIGRATION_FROM_DATE} option")]
    assert [o for o in options if o] == ["1997-03-31", "1997-06-30", "1997-09-30", "1997-12-31", "1998-03-31", "1998-06-30"]
    dash_br.wait_for_contains_text(f"#{ids.MIGRATION_MOVERS}", "between 1998-03-31 and 1998-06-30", timeout=60)
    # A backwards pair of dates is one line, not an error.
    _select(dash_br, ids.MIGRATION_FROM_DATE, "1998-06-30")
    _select(dash_br, ids.MIGRATION_TO_DATE, "1997-03-31")
    dash_br.wait_for_contains_text(f"#{ids.MIGRATION_MOVERS}", "must be before", timeout=60)
    assert console_errors(dash_br) == []
