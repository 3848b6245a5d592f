"""Data & models page (/data) in headless Chromium against servers of its own (not the shared one):
upload checks, retrain with progress, compare, activate / roll back / delete, exports, a corrupted active model."""
from __future__ import annotations

import csv
import io
import json
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

from core.versions.pipeline import train
from core.versions.registry import Registry
from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.keys import Keys

from dashboard import ids
from tests.conftest import SAMPLE, console_errors, start_server

pytestmark = pytest.mark.browser

STEP_LIST = "load → clean → features → fit → profiles → sweep → stability → compare → save"


@pytest.fixture(scope="module")
def data_server(tmp_path_factory, warm_models):
    """A server of this module's own, so retrains and activations do not disturb the shared one."""
    server = start_server(tmp_path_factory.mktemp("data_page"), models_from=warm_models)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    """A good variant (comma-separated, UTF-8 with BOM, CRLF), a binary file named .csv, and an .xlsx."""
    folder = tmp_path_factory.mktemp("uploads")
    frame = pd.read_csv(SAMPLE, sep="\t", dtype=str, keep_default_na=False)
    good = folder / "customers export.csv"
    good.write_bytes(frame.to_csv(index=False, lineterminator="\r\n").encode("utf-8-sig"))
    binary = folder / "customers.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40)
    xlsx = folder / "customers.xlsx"
    xlsx.write_bytes(b"PK\x03\x04" + b"\x00" * 200)
    return {"good": good, "binary": binary, "xlsx": xlsx, "rows": len(frame)}


def _upload(br, path: Path) -> None:
    br.find_element(f"#{ids.DATA_UPLOAD} input[type=file]").send_keys(str(path))


def _uploads(server) -> list[str]:
    folder = server.cache_dir / "uploads"
    return sorted(p.name for p in folder.glob("*.upload")) if folder.exists() else []


def _click(br, element, tries: int = 20) -> None:
    """Scroll an element to the middle of the window, then click it like a person would.

    Content arriving above it (reports, messages) can move it between the scroll and the click: try again.
    """
    from selenium.common.exceptions import ElementClickInterceptedException

    for attempt in range(tries):
        br.driver.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'});", element)
        try:
            element.click()
            return
        except ElementClickInterceptedException:
            if attempt == tries - 1:
                blocker = br.driver.execute_script(
                    "const r = arguments[0].getBoundingClientRect();"
                    "const e = document.elementFromPoint(r.x + r.width / 2, r.y + r.height / 2);"
                    "return e ? e.outerHTML.slice(0, 200) : null;", element)
                raise AssertionError(f"click intercepted by {blocker}") from None
            time.sleep(0.25)


def _row(br, version: str):
    return br.find_element(f"#{ids.DATA_VERSIONS} tr[data-version='{version}']")


def _wait(predicate, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except StaleElementReferenceException:  # the table re-rendered between finding a row and reading it
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_upload_report_and_refused_files(dash_br, data_server, files):
    dash_br.wait_for_page(url=data_server.url + "/data")
    dash_br.wait_for_element(f"#{ids.DATA_VERSIONS} tr[data-version='v0001']")
    retrain = dash_br.find_element(f"#{ids.DATA_RETRAIN_BTN}")
    assert retrain.get_attribute("disabled") is not None  # nothing to retrain on yet

    _upload(dash_br, files["binary"])
    dash_br.wait_for_contains_text(f"#{ids.DATA_UPLOAD_REPORT}", "This file cannot be used")
    text = dash_br.find_element(f"#{ids.DATA_UPLOAD_REPORT}").text
    assert "customers.csv is not a text file (binary content)" in text
    assert "Nothing was changed: the active model stays v0001" in text

    _upload(dash_br, files["xlsx"])
    dash_br.wait_for_contains_text(f"#{ids.DATA_UPLOAD_REPORT}", "customers.xlsx is a .xlsx file")
    assert "File > Save As > CSV" in dash_br.find_element(f"#{ids.DATA_UPLOAD_REPORT}").text
    assert _uploads(data_server) == []  # refused files are not kept
    assert retrain.get_attribute("disabled") is not None

    _upload(dash_br, files["good"])
    dash_br.wait_for_contains_text(f"#{ids.DATA_UPLOAD_REPORT}", "rows read")
    report = dash_br.find_element(f"#{ids.DATA_UPLOAD_REPORT}").text
    assert f"customers export.csv: {files['rows']:,} rows read" in report
    assert "comma" in report and "utf-8-sig with byte-order mark" in report and "CRLF" in report
    assert "dd-mm-yyyy" in report  # the date format detected
    assert "missing income" in report and "odd marital status" in report  # cleaning rules with their counts
    headers = [th.text for th in dash_br.find_elements(f"#{ids.DATA_UPLOAD_REPORT} table th")]
    assert "ID" in headers and "Recency" in headers
    assert "Income" not in headers and "Year_Birth" not in headers  # the preview shows no personal columns
    assert len(_uploads(data_server)) == 1
    _wait(lambda: retrain.get_attribute("disabled") is None, what="Retrain to be enabled")
    dash_br.wait_for_contains_text(f"#{ids.DATA_RECOMMENDATION}", "Recommended for customers export.csv: k=")
    assert [r["version"] for r in Registry(data_server.models_dir).versions()] == ["v0001"]

    # Retrain starts from the active model's k; one click takes the recommended one.
    recommended = int(dash_br.find_element(f"#{ids.DATA_RECOMMENDATION}").text.split("k=")[1].split(".")[0])
    k_box = dash_br.find_element(f"#{ids.DATA_K}")
    assert k_box.get_attribute("value") == str(Registry(data_server.models_dir).metadata()["k"])
    use = dash_br.find_element(f"#{ids.DATA_USE_RECOMMENDED_K}")
    if recommended != int(k_box.get_attribute("value")):
        _wait(lambda: use.get_attribute("disabled") is None, what="the recommended-k button")
        assert f"({recommended})" in use.text
        _click(dash_br, use)
        _wait(lambda: k_box.get_attribute("value") == str(recommended), what="k set to the recommended one")
        _wait(lambda: use.get_attribute("disabled") is not None, what="the button to be spent")

    # The upload and its report survive leaving the page and coming back (same tab: session storage).
    dash_br.wait_for_page(url=data_server.url + "/")
    dash_br.wait_for_element(f"#{ids.OVERVIEW_PERSONAS}")
    dash_br.wait_for_page(url=data_server.url + "/data")
    dash_br.wait_for_contains_text(f"#{ids.DATA_UPLOAD_REPORT}", f"customers export.csv: {files['rows']:,} rows read")
    retrain = dash_br.find_element(f"#{ids.DATA_RETRAIN_BTN}")
    _wait(lambda: retrain.get_attribute("disabled") is None, what="Retrain to be enabled after coming back")
    dash_br.wait_for_contains_text(f"#{ids.DATA_RECOMMENDATION}", "Recommended for customers export.csv: k=")
    assert len(_uploads(data_server)) == 1  # the same kept file, not a second copy
    assert console_errors(dash_br) == []


def test_retrain_compare_activate_rollback_delete(dash_br, data_server, files):
    registry = Registry(data_server.models_dir)
    active_names = registry.metadata()["segment_names"]
    dash_br.wait_for_page(url=data_server.url + "/data")
    _upload(dash_br, files["good"])
    dash_br.wait_for_contains_text(f"#{ids.DATA_UPLOAD_REPORT}", "rows read")
    retrain = dash_br.find_element(f"#{ids.DATA_RETRAIN_BTN}")
    _wait(lambda: retrain.get_attribute("disabled") is None, what="Retrain to be enabled")
    k_box = dash_br.find_element(f"#{ids.DATA_K}")
    if k_box.get_attribute("value") != str(registry.metadata()["k"]):  # the previous test took the recommended k
        k_box.send_keys(Keys.CONTROL, "a")
        k_box.send_keys(str(registry.metadata()["k"]))
    _click(dash_br, retrain)

    # The progress bar names the step while the job runs.
    label = _wait(lambda: next((e.text for e in dash_br.find_elements(f"#{ids.DATA_PROGRESS} .progress-bar")
                                if "·" in e.text), None), timeout=30, what="a progress label")
    assert any(f"· {step}:" in label for step in STEP_LIST.split(" → ")), label
    dash_br.wait_for_contains_text(f"#{ids.DATA_RETRAIN_MSG}", "Saved candidate v0002", timeout=60)
    assert STEP_LIST in dash_br.find_element(f"#{ids.DATA_RETRAIN_MSG}").text
    assert registry.active_version() == "v0001"  # a candidate is never activated by training
    candidate = registry.metadata("v0002")
    assert candidate["segment_names"] == active_names  # same customers: every name follows its segment
    assert candidate["data_source"] == "customers export.csv"
    assert Path(candidate["data_path"]).parent == data_server.models_dir / "data"  # server-made name, not the upload's

    # The comparison with the active model.
    dash_br.wait_for_contains_text(f"#{ids.DATA_COMPARISON}", "Candidate v0002", timeout=20)
    comparison = dash_br.find_element(f"#{ids.DATA_COMPARISON}").text
    assert "agreement on common customers" in comparison.lower()
    ari = candidate["comparison"]["ari_common"]
    assert ari > 0.9 and f"{ari:.2f}" in comparison
    assert candidate["comparison"]["n_common"] == candidate["n_customers"]
    # What "agreement on common customers" means is said under the numbers.
    note = dash_br.find_element(f"#{ids.DATA_COMMON_NOTE}").text
    assert f"{candidate['n_customers']:,}" in note or "adjusted Rand index" in note
    dash_br.wait_for_element(f"#{ids.DATA_DRIFT}")
    assert dash_br.find_element(f"#{ids.DATA_DRIFT}").text.startswith("Keep:")  # same data: no drift
    rows = dash_br.find_elements(f"#{ids.DATA_COMPARISON_TABLE} tbody tr")
    assert len(rows) == candidate["k"] and all("name kept" in r.text for r in rows)
    assert "no" in _row(dash_br, "v0002").text

    # Activate from the comparison (asked first: dismissing changes nothing), roll back, delete.
    _click(dash_br, dash_br.find_element(f"#{ids.DATA_COMPARISON} button.btn-activate"))
    alert = _wait(lambda: _alert(dash_br), what="the activate confirmation")
    assert "Activate model version v0002?" in alert.text
    alert.dismiss()
    time.sleep(1)
    assert registry.active_version() == "v0001" and not dash_br.find_element(f"#{ids.DATA_ACTION_MSG}").text
    _click(dash_br, dash_br.find_element(f"#{ids.DATA_COMPARISON} button.btn-activate"))
    _wait(lambda: _alert(dash_br), what="the activate confirmation").accept()
    dash_br.wait_for_contains_text(f"#{ids.DATA_ACTION_MSG}", "v0002 is now the active model")
    assert registry.active_version() == "v0002"
    # The header's model badge follows the activation without a navigation.
    dash_br.wait_for_contains_text(f"#{ids.NAV_MODEL}", "Model v0002", timeout=20)
    _wait(lambda: "active" in _row(dash_br, "v0002").text, what="v0002 marked active")
    active_delete = _row(dash_br, "v0002").find_elements("css selector", "button.btn-outline-danger")[0]
    assert active_delete.get_attribute("disabled") is not None  # the active version cannot be deleted
    _click(dash_br, dash_br.find_element(f"#{ids.DATA_ROLLBACK_BTN}"))
    alert = _wait(lambda: _alert(dash_br), what="the roll-back confirmation")
    assert "Roll back to the previously active version?" in alert.text
    alert.accept()
    dash_br.wait_for_contains_text(f"#{ids.DATA_ACTION_MSG}", "Rolled back: v0001 is the active model again")
    assert registry.active_version() == "v0001"
    _wait(lambda: "active" in _row(dash_br, "v0001").text, what="v0001 marked active")
    _click(dash_br, _row(dash_br, "v0002").find_elements("css selector", "button.btn-outline-danger")[0])
    alert = _wait(lambda: _alert(dash_br), what="the delete confirmation")
    assert "Delete model version v0002?" in alert.text
    alert.accept()
    dash_br.wait_for_contains_text(f"#{ids.DATA_ACTION_MSG}", "v0002 was deleted")
    assert [v["version"] for v in registry.versions()] == ["v0001"]
    _wait(lambda: not dash_br.find_elements(f"#{ids.DATA_VERSIONS} tr[data-version='v0002']"), what="row removed")
    _click(dash_br, dash_br.find_element(f"#{ids.DATA_ROLLBACK_BTN}"))
    _wait(lambda: _alert(dash_br), what="the roll-back confirmation").accept()
    dash_br.wait_for_contains_text(f"#{ids.DATA_ACTION_MSG}", "Not done: nothing to roll back to")
    assert console_errors(dash_br) == []


def test_cancel_stops_the_job_and_saves_nothing(dash_br, data_server, tmp_path):
    """A file eight times the sample (about 6 s to retrain) so that Cancel lands mid-way."""
    frame = pd.read_csv(SAMPLE, sep="\t", dtype=str, keep_default_na=False)
    parts = [frame.assign(ID=(frame["ID"].astype(int) + r * 100_000).astype(str)) for r in range(8)]
    big = tmp_path / "big.tsv"
    pd.concat(parts).to_csv(big, sep="\t", index=False)
    registry = Registry(data_server.models_dir)
    before = [v["version"] for v in registry.versions()]
    dash_br.wait_for_page(url=data_server.url + "/data")
    _upload(dash_br, big)
    dash_br.wait_for_contains_text(f"#{ids.DATA_UPLOAD_REPORT}", "rows read", timeout=30)
    retrain = dash_br.find_element(f"#{ids.DATA_RETRAIN_BTN}")
    _wait(lambda: retrain.get_attribute("disabled") is None, what="Retrain to be enabled")
    _click(dash_br, retrain)
    _wait(lambda: any("· " in e.text for e in dash_br.find_elements(f"#{ids.DATA_PROGRESS} .progress-bar")),
          timeout=30, what="the job to report progress")
    _click(dash_br, dash_br.find_element(f"#{ids.DATA_CANCEL_BTN}"))
    dash_br.wait_for_contains_text(f"#{ids.DATA_RETRAIN_MSG}", "Retraining was cancelled")
    _wait(lambda: retrain.get_attribute("disabled") is None, what="Retrain to be enabled again")
    time.sleep(8)  # longer than the whole job would have taken: it must not save anything late
    assert [v["version"] for v in registry.versions()] == before
    with registry.training_lock():  # the killed job's lock was released with its process
        pass
    assert "Saved candidate" not in dash_br.find_element(f"#{ids.DATA_RETRAIN_MSG}").text
    assert console_errors(dash_br) == []


def _alert(br):
    from selenium.common.exceptions import NoAlertPresentException

    try:
        alert = br.driver.switch_to.alert
        alert.text  # noqa: B018 - raises when there is no alert yet
        return alert
    except NoAlertPresentException:
        return None


def _download(br, name_start: str, timeout: float = 20.0) -> Path:
    folder = Path(br.download_path)
    return _wait(lambda: next((p for p in folder.glob(f"{name_start}*") if not p.name.endswith(".crdownload")), None),
                 timeout=timeout, what=f"download {name_start}")


def test_exports_are_complete_and_formula_safe(dash_br, data_server):
    registry = Registry(data_server.models_dir)
    version = registry.active_version()
    meta = registry.metadata()
    names = list(meta["segment_names"])
    names[0] = "=cmd|' /C calc'!A0"
    registry.update_meta(version, segment_names=names)  # a rename a spreadsheet would run as a formula
    try:
        dash_br.wait_for_page(url=data_server.url + "/data")
        _click(dash_br, dash_br.find_element(f"#{ids.DATA_EXPORT_MEMBERSHIP_BTN}"))
        membership = _download(dash_br, "segment_membership_")
        rows = list(csv.reader(io.StringIO(membership.read_text(encoding="utf-8"))))
        assert rows[0] == ["ID", "segment", "segment_name", "confidence"]
        assert len(rows) - 1 == meta["n_customers"]
        seg0 = [r for r in rows[1:] if r[1] == "0"]
        assert seg0 and all(r[2] == "'=cmd|' /C calc'!A0" for r in seg0)
        assert not any(cell.startswith(("=", "+", "@")) for r in rows for cell in r)
        assert all(0.0 <= float(r[3]) <= 1.0 for r in rows[1:])

        _click(dash_br, dash_br.find_element(f"#{ids.DATA_EXPORT_PROFILES_BTN}"))
        profiles = list(csv.reader(io.StringIO(_download(dash_br, "segment_profiles_").read_text(encoding="utf-8"))))
        assert profiles[0][:2] == ["table", "measure"] and len(profiles[0]) == 2 + meta["k"]
        assert not any(cell.startswith(("=", "+", "@")) for r in profiles for cell in r)

        _click(dash_br, dash_br.find_element(f"#{ids.DATA_EXPORT_REPORT_BTN}"))
        page = _download(dash_br, "segment_report_").read_text(encoding="utf-8")
        assert page.startswith("<!DOCTYPE html>") and "<svg" in page and "Campaign economics" in page
        assert "=cmd|&#x27; /C calc&#x27;!A0" in page  # escaped
        assert "<script" not in page and "src=" not in page and "href=" not in page  # nothing to fetch
        assert console_errors(dash_br) == []
    finally:
        registry.update_meta(version, segment_names=meta["segment_names"])


def test_corrupted_active_model_is_never_replaced_and_a_damaged_version_is_never_activated(dash_br, tmp_path,
                                                                                         warm_models):
    """A damaged active file that this server never loaded: nothing is served (no other version either), every
    page says so, /data still works, and activating a sound version repairs it (after a confirmation).
    Then, on the same server: activating a damaged candidate is refused and the sound version stays active."""
    server = start_server(tmp_path, models_from=warm_models)
    try:
        registry = Registry(server.models_dir)
        bad, _, _ = train(SAMPLE, registry=registry, k=4)  # a second version, activated
        path = server.models_dir / f"{bad}.npz"  # the model file (a version has artifact files too)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])  # truncated: fails its checksum
        assert registry.active_version() == bad == "v0002"

        dash_br.wait_for_page(url=server.url + "/")
        dash_br.wait_for_element(f"#{ids.NAV_MODEL_WARNING}")
        banner = dash_br.wait_for_element(f"#{ids.APP_BANNER_MODEL}").text
        assert "The active model cannot be served" in banner
        assert "Nothing to show" in dash_br.find_element(f"#{ids.PAGE_CONTAINER}").text
        assert not dash_br.find_elements(f"#{ids.OVERVIEW_PERSONAS}")  # v0001's personas are not passed off as v0002's
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(server.url + "/api/v1/health", timeout=10)
        assert err.value.code == 503 and json.load(err.value)["status"] == "degraded"

        dash_br.wait_for_page(url=server.url + "/data")
        dash_br.wait_for_element(f"#{ids.DATA_WARNING}")
        assert "fails checksum" in _row(dash_br, "v0002").text

        # Activating a sound version repairs it.
        _click(dash_br, _row(dash_br, "v0001").find_element("css selector", "button.btn-activate"))
        _wait(lambda: _alert(dash_br), what="the activate confirmation").accept()
        dash_br.wait_for_contains_text(f"#{ids.DATA_ACTION_MSG}", "v0001 is now the active model")
        assert registry.active_version() == "v0001"
        _wait(lambda: not dash_br.find_elements(f"#{ids.DATA_WARNING}"), what="warning cleared")
        with urllib.request.urlopen(server.url + "/api/v1/health", timeout=10) as resp:
            assert json.load(resp)["status"] == "ok"
        assert console_errors(dash_br) == []

        # Activating a damaged version is refused (was its own test with its own server: same checks).
        bad, _, _ = train(SAMPLE, registry=registry, k=4, activate=False)  # a candidate, not active
        assert bad == "v0003"
        path = server.models_dir / f"{bad}.npz"  # the model file, not one of its artifacts
        path.write_bytes(path.read_bytes()[:100])
        dash_br.wait_for_page(url=server.url + "/data")
        _click(dash_br, _row(dash_br, bad).find_element("css selector", "button.btn-activate"))
        _wait(lambda: _alert(dash_br), what="the activate confirmation").accept()
        dash_br.wait_for_contains_text(f"#{ids.DATA_ACTION_MSG}", f"Not done: model {bad}")
        assert registry.active_version() == "v0001"
        assert console_errors(dash_br) == []
    finally:
        server.stop()
