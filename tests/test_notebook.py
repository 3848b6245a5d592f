"""notebooks/EDA.ipynb: stored without outputs, and runs top to bottom in a fresh kernel on the sample."""
import json
import os
import time

import pytest

from tests.conftest import ROOT, SAMPLE

NOTEBOOK = ROOT / "notebooks" / "EDA.ipynb"
PLOTLY = "application/vnd.plotly.v1+json"


def test_notebook_is_stored_without_outputs():
    nb = json.loads(NOTEBOOK.read_text(encoding="utf-8"))
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert len(code) >= 20
    for cell in code:
        assert cell["execution_count"] is None and cell["outputs"] == [], "".join(cell["source"])[:80]
    assert nb["metadata"]["kernelspec"]["name"] == "python3"


def _registry_state():
    models = ROOT / "models"
    return sorted((p.name, p.stat().st_mtime_ns) for p in models.rglob("*")) if models.exists() else []


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The notebook executed by nbclient in a fresh `python3` kernel (ipykernel's spec), cwd notebooks/."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    before = _registry_state()
    saved = os.environ.get("SEGMENTLENS_DATA")
    os.environ["SEGMENTLENS_DATA"] = str(SAMPLE)  # the kernel inherits it: the sample, whatever data/ holds
    try:
        start = time.perf_counter()
        client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3", allow_errors=True,
                                         resources={"metadata": {"path": str(NOTEBOOK.parent)}})
        client.execute()
        elapsed = time.perf_counter() - start
    finally:
        if saved is None:
            os.environ.pop("SEGMENTLENS_DATA", None)
        else:
            os.environ["SEGMENTLENS_DATA"] = saved
    return nb, elapsed, before


def test_notebook_runs_without_error_in_under_a_minute(executed):
    nb, elapsed, _ = executed
    errors = [(i, o.get("ename"), o.get("evalue")) for i, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"]
    assert errors == []
    assert elapsed < 60, f"took {elapsed:.1f} s"


def test_notebook_draws_at_least_eight_plotly_figures(executed):
    nb, _, _ = executed
    figures = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if PLOTLY in o.get("data", {})]
    assert len(figures) >= 8
    titles = json.dumps([f["data"][PLOTLY]["layout"] for f in figures])
    assert "far-out fence" in titles  # the income distribution carries the cleaning cut-off


def test_notebook_insights_are_computed_from_the_sample(executed):
    nb, _, before = executed
    text = "\n".join(o["data"]["text/markdown"] for c in nb.cells if c.cell_type == "code" for o in c.outputs
                     if "text/markdown" in o.get("data", {}))
    from core.versions.pipeline import prepare

    prepared = prepare(SAMPLE)
    assert f"{prepared.report.rows_read:,} rows" in text and f"{prepared.report.rows_used:,} customers kept" in text
    assert "synthetic_customers.tsv" in text and "Recommended k =" in text
    assert "give the model's segment for 100.0%" in text  # the seed's pickles agree with the model
    assert _registry_state() == before  # nothing written to the repository's models/
