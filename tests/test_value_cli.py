"""`python -m core value`: JSON keys, the per-customer CSV, segments of an active version, bad inputs (exit 2)."""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from core.value.simulate import simulate_log
from tests.conftest import copy_registry

ROOT = Path(__file__).resolve().parents[1]
CDNOW = ROOT.parent / "shared" / "data" / "cdnow_transactions.txt"


def _run(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "core", "value", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def log(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli") / "log.tsv"
    frame = simulate_log(1500, seed=5, weeks=52)
    frame["date"] = frame["date"].dt.strftime("%Y%m%d")
    frame.to_csv(path, sep="\t", index=False)
    return path


def _no_nan(value):
    if isinstance(value, float):
        assert math.isfinite(value)
    elif isinstance(value, dict):
        for v in value.values():
            _no_nan(v)
    elif isinstance(value, list):
        for v in value:
            _no_nan(v)


def test_json_and_csv(log, tmp_path):
    out = tmp_path / "customers.csv"
    proc = _run("--data", log, "--calibration-end", "2020-09-30", "--time-unit", "week", "--horizon", "26",
                "--discount-rate", "0.08", "--json", "--out", out, "--models", tmp_path / "models", "--draws", "40")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    _no_nan(report)
    assert report["model"] == "BG/NBD + Gamma-Gamma" and report["time_unit"] == "week" and report["horizon"] == 26
    assert report["customers"] == 1500
    assert set(report["params"]) == {"r", "alpha", "a", "b"} and set(report["spend_params"]) == {"p", "q", "gamma"}
    assert report["log_likelihood"] < 0
    assert report["holdout"]["actual"] > 0 and report["holdout"]["predicted"] > 0
    assert "segments" not in report  # no version of this log is active
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["ID", "frequency", "recency", "T", "p_alive", "expected_purchases",
                                   "expected_spend", "clv"]
    assert len(frame) == 1500 and frame["p_alive"].between(0, 1).all()
    assert frame.loc[frame["frequency"] == 0, "p_alive"].eq(1).all()
    assert frame["clv"].sum() == pytest.approx(report["totals"]["clv_total"], rel=1e-5)


def test_text_output_and_units(log, tmp_path):
    proc = _run("--data", log, "--time-unit", "day", "--quiet", "--draws", "0", "--models", tmp_path / "m")
    assert proc.returncode == 0, proc.stderr
    assert "BG/NBD (days)" in proc.stdout and "CLV over 365 days" in proc.stdout and "nan" not in proc.stdout.lower()


@pytest.mark.parametrize("args, message", [
    (["--calibration-end", "2031-01-01"], "outside the data's dates"),
    (["--calibration-end", "2019-12-31"], "outside the data's dates"),
    (["--calibration-end", "yesterday"], "not a date"),
    (["--horizon", "0"], "--horizon must be at least 1"),
    (["--discount-rate", "-1"], "--discount-rate must be a yearly rate"),
])
def test_bad_options(log, args, message):
    proc = _run("--data", log, "--quiet", *args)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_bad_files(tmp_path, sample_path):
    proc = _run("--data", sample_path, "--quiet")
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("error: synthetic_customers.tsv: value needs a transaction log (customer, date, "
                                   "amount); this looks like a customer table (one row per customer)")
    once = tmp_path / "once.csv"
    once.write_text("customer,date,amount\nA,2024-01-01,10\nA,2024-01-01,2\nB,2024-01-03,5\nC,2024-01-04,5\n")
    proc = _run("--data", once, "--quiet")
    assert proc.returncode == 2 and "nobody bought on two different days" in proc.stderr
    regular = tmp_path / "regular.csv"
    regular.write_text("customer,date,amount\n" + "".join(
        f"{c},2024-01-{d:02d},10\n" for c in "ABC" for d in (1, 8, 15, 22)))
    proc = _run("--data", regular, "--quiet")
    assert proc.returncode == 2 and "did not converge" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    proc = _run("--data", tmp_path / "missing.csv", "--quiet")
    assert proc.returncode == 2 and "no such file" in proc.stderr
    bad_map = tmp_path / "map.json"
    bad_map.write_text(json.dumps({"input": "customers", "columns": {"customer": "id"}}))
    proc = _run("--data", once, "--map", bad_map, "--quiet")
    assert proc.returncode == 2 and "value needs a transaction log" in proc.stderr


def test_segments_of_the_active_version_on_cdnow(tmp_path, cdnow_cli_models):
    # A copy of the registry `python -m core train --data CDNOW --n-init 2` made once (tests/conftest.py).
    models = copy_registry(cdnow_cli_models, tmp_path / "models")
    out = tmp_path / "c.csv"
    proc = _run("--data", CDNOW, "--models", models, "--calibration-end", "1997-09-30", "--json", "--quiet",
                "--draws", "30", "--out", out)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    segs = report["segments"]
    assert len(segs) == 6 and sum(s["customers"] for s in segs) == 23_570
    assert [s["clv_total"] for s in segs] == sorted((s["clv_total"] for s in segs), reverse=True)
    for s in segs:
        assert set(s) >= {"segment", "name", "customers", "clv_mean", "clv_total", "clv_low", "clv_high",
                          "p_alive_mean"}
        assert s["clv_low"] < s["clv_total"] < s["clv_high"]
    frame = pd.read_csv(out)
    assert "segment" in frame and frame.groupby("segment")["clv"].sum().round(2).to_dict() == {
        s["segment"]: round(s["clv_total"], 2) for s in segs}
