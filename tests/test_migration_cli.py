"""`python -m core migration`: JSON contract, movers file and audience, stored result, bad input (exit 2, one line)."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from core.cli.commands import main
from core.versions.pipeline import train
from core.insight.migration import NEW
from core.versions.registry import Registry
from tests.conftest import copy_registry

CDNOW = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "cdnow_transactions.txt"
SAMPLE = Path(__file__).resolve().parents[1] / "data" / "synthetic_customers.tsv"


@pytest.fixture(scope="module")
def models(tmp_path_factory, cdnow_trained_models):
    """A copy of the registry trained once on the CDNOW log (tests/conftest.py ``cdnow_trained_models``)."""
    root = copy_registry(cdnow_trained_models, tmp_path_factory.mktemp("models"))
    version = Registry(root).active_version()
    model, meta = Registry(root).load(version)
    return {"root": str(root), "version": version, "model": model, "meta": meta}


def _run(capsys, *argv):
    code = main(["migration", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_has_snapshots_and_transitions_with_numbers_and_names(models, capsys):
    code, out, _ = _run(capsys, "--models", models["root"], "--every", "quarter", "--json")
    assert code == 0
    doc = json.loads(out)
    names = models["meta"]["segment_names"]
    assert doc["model_version"] == models["version"]
    assert [s["date"] for s in doc["snapshots"]] == ["1997-03-31", "1997-06-30", "1997-09-30", "1997-12-31",
                                                     "1998-03-31", "1998-06-30"]
    assert all(s["customers"] == 23570 == sum(s["sizes"].values()) for s in doc["snapshots"])
    assert doc["segments"] == [{"segment": i, "name": n} for i, n in enumerate(names)]
    for t in doc["transitions"]:
        assert set(t) >= {"from_date", "to_date", "from", "to", "customers", "from_name", "to_name"}
        assert t["to_name"] == names[t["to"]] and (t["from"] == NEW or t["from_name"] == names[t["from"]])
    # Every customer of a snapshot arrives from exactly one row of the transition matrix.
    into_last = sum(t["customers"] for t in doc["transitions"] if t["to_date"] == "1998-06-30")
    assert into_last == 23570
    last = doc["snapshots"][-1]["sizes"]
    sizes = pd.Series(models["model"].labels_).value_counts()
    assert all(last[str(i)] == int(sizes.get(i, 0)) for i in range(models["model"].k))
    # The whole-log run was kept with the version for the page.
    stored = Registry(models["root"]).artifact_json(models["version"], "migration")
    assert stored["runs"]["quarter"]["transitions"] == doc["transitions"]


def test_text_output_names_the_largest_moves(models, capsys):
    code, out, _ = _run(capsys, "--models", models["root"], "--every", "quarter")
    assert code == 0
    assert "6 snapshots every quarter, 1997-03-31 to 1998-06-30" in out
    assert "largest moves:" in out and "went from" in out


def test_movers_file_and_audience(models, capsys, tmp_path):
    out_csv, aud = tmp_path / "m.csv", tmp_path / "a.csv"
    code, _, err = _run(capsys, "--models", models["root"], "--from", "1998-03-31", "--json", "--movers", "*:*",
                        "--out", str(out_csv), "--audience", str(aud), "--holdout", "0.25")
    assert code == 0
    frame = pd.read_csv(out_csv)
    assert f"{len(frame):,} customers moved *:* between 1998-03-31 and 1998-06-30" in err
    assert (frame["from_segment"] != frame["to_segment"]).all()
    audience = pd.read_csv(aud)
    assert list(audience.columns) == ["ID", "segment", "group", "propensity"]
    assert audience["ID"].tolist() == frame["ID"].tolist()
    assert (audience["group"] == "holdout").sum() == int(0.25 * len(frame) + 0.5)  # half up, as assign_holdout


@pytest.mark.parametrize("argv, message", [
    (["--to", "1999-01-01"], "to: 1999-01-01 is after the log's latest date"),
    (["--from", "1998-09-30"], "from: 1998-09-30 is after the log's latest date"),
    (["--from", "1997-13-01"], "from: expected a date such as 1997-09-30"),
    (["--movers", "0:1"], "--movers and --out go together"),
    (["--movers", "0:42", "--out", "x.csv"], "movers: to segment 42 does not exist"),
    (["--movers", "0:1", "--out", "/no/such/folder/m.csv"], "--out: folder /no/such/folder does not exist"),
    (["--data", "/no/such/log.txt"], "data: no file /no/such/log.txt"),
])
def test_bad_input_exits_2_with_one_line(models, capsys, argv, message):
    code, out, err = _run(capsys, "--models", models["root"], *argv)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and message in err


def test_a_customer_table_version_is_refused(tmp_path, capsys):
    train(str(SAMPLE), registry=Registry(tmp_path), k=3, n_init=1)
    code, _, err = _run(capsys, "--models", str(tmp_path))
    assert code == 2 and err.count("\n") == 1
    assert "no purchase dates; segments over time need a transaction log" in err


def test_no_model_is_one_line(tmp_path, capsys):
    code, _, err = _run(capsys, "--models", str(tmp_path / "empty"))
    assert code == 2 and "no model in" in err and "python -m core train --data LOG" in err
