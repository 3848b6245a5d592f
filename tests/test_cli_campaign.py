"""`python -m core campaign plan|results`: outputs, saved plans, exit 2 with one line for bad input."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from core.campaigns.store import CampaignStore
from core.cli.commands import main
from core.versions.pipeline import train
from core.versions.registry import Registry
from tests.conftest import ROOT, SAMPLE


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli-camp") / "models"
    train(SAMPLE, registry=Registry(root))
    return root


def _plan(models, out, *extra, capsys=None):
    code = main(["campaign", "plan", "--data", str(SAMPLE), "--models", str(models), "--cost", "3",
                 "--revenue", "11", "--out", str(out), "--json", *extra])
    return code, json.loads(capsys.readouterr().out) if code == 0 else None


def test_plan_writes_the_audience_and_saves_the_plan(models, tmp_path, capsys):
    out = tmp_path / "audience.csv"
    code, body = _plan(models, out, "--holdout", "0.2", "--seed", "7", capsys=capsys)
    assert code == 0
    audience = pd.read_csv(out)
    assert list(audience.columns) == ["ID", "segment", "group", "propensity"]
    assert body["n_targeted"] == (audience["group"] == "target").sum()
    assert body["n_holdout"] == (audience["group"] == "holdout").sum()
    assert body["n_holdout"] == int(np.floor(0.2 * len(audience) + 0.5))
    for s, members in audience.groupby("segment"):  # stratified: each segment holds back within one of 20 %
        assert abs((members["group"] == "holdout").sum() - 0.2 * len(members)) < 1
    target = audience[audience["group"] == "target"]
    assert body["expected_profit"] == pytest.approx((target["propensity"] * 11 - 3).sum(), abs=0.01)
    assert 0.6 < body["auc"] < 0.95 and body["model_version"] == "v0001"
    assert {"segment", "n_targeted", "n_holdout", "expected_profit", "profit_low", "profit_high"} <= set(
        body["segments"][0])
    assert sum(s["n_targeted"] for s in body["segments"]) == body["n_targeted"]
    assert body["economics"] == {"cost": 3.0, "revenue": 11.0, "budget": None, "max_contacts": None,
                                 "holdout": 0.2, "seed": 7}
    assert CampaignStore(models).get(body["id"])["audience_sha256"] == body["audience_sha256"]
    # Same seed, same audience.
    again = tmp_path / "again.csv"
    assert _plan(models, again, "--holdout", "0.2", "--seed", "7", capsys=capsys)[0] == 0
    assert again.read_bytes() == out.read_bytes()


def test_budget_and_max_contacts_cap_the_audience(models, tmp_path, capsys):
    code, body = _plan(models, tmp_path / "a.csv", "--budget", "90", capsys=capsys)
    assert code == 0 and body["n_targeted"] + body["n_holdout"] == 30
    code, body = _plan(models, tmp_path / "b.csv", "--max-contacts", "50", "--holdout", "0", capsys=capsys)
    assert code == 0 and body["n_targeted"] == 50 and body["n_holdout"] == 0


def test_results_measure_uplift_and_save_with_the_plan(models, tmp_path, capsys):
    out = tmp_path / "audience.csv"
    code, plan = _plan(models, out, "--holdout", "0.3", capsys=capsys)
    audience = pd.read_csv(out)
    responded = (audience["group"] == "target").astype(int).to_numpy().copy()
    responded[::2] = 0
    outcomes = tmp_path / "outcomes.csv"
    pd.DataFrame({"ID": audience["ID"], "responded": responded}).to_csv(outcomes, index=False)
    assert main(["campaign", "results", "--audience", str(out), "--outcomes", str(outcomes),
                 "--models", str(models), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    t = responded[(audience["group"] == "target").to_numpy()].mean()
    h = responded[(audience["group"] == "holdout").to_numpy()].mean()
    assert res["overall"]["uplift"] == pytest.approx(t - h) and res["plan_id"] == plan["id"]
    nt = res["overall"]["n_target"]
    assert res["incremental_profit"]["value"] == pytest.approx((t - h) * nt * 11 - nt * 3)
    assert CampaignStore(models).get(plan["id"])["results"]["overall"]["uplift"] == pytest.approx(t - h)


@pytest.mark.parametrize("args, message", [
    (["--cost", "0", "--revenue", "11"], "error: cost: must be greater than 0, got 0"),
    (["--cost", "3", "--revenue", "-1"], "error: revenue: must be greater than 0, got -1"),
    (["--cost", "3", "--revenue", "11", "--holdout", "0.6"], "error: holdout: must be between 0 and 0.5, got 0.6"),
    (["--cost", "3", "--revenue", "11", "--budget", "0"], "error: budget: must be greater than 0, got 0"),
])
def test_bad_plan_input_exits_2_with_one_line_and_saves_nothing(models, tmp_path, args, message):
    before = len(CampaignStore(models).plans())
    proc = subprocess.run([sys.executable, "-m", "core", "campaign", "plan", "--models", str(models), "--data",
                           str(SAMPLE), "--out", str(tmp_path / "x.csv"), *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip() == message
    assert not (tmp_path / "x.csv").exists() and len(CampaignStore(models).plans()) == before


def test_bad_outcomes_exit_2_naming_the_rows(models, tmp_path, capsys):
    out = tmp_path / "audience.csv"
    assert _plan(models, out, capsys=capsys)[0] == 0
    ids = pd.read_csv(out)["ID"].tolist()
    outcomes = tmp_path / "o.csv"
    outcomes.write_text(f"ID,responded\n{ids[0]},1\n{ids[0]},0\n", encoding="utf-8")
    assert main(["campaign", "results", "--audience", str(out), "--outcomes", str(outcomes),
                 "--models", str(models)]) == 2
    assert capsys.readouterr().err.strip() == "error: outcomes: duplicate ID on rows 1, 2"
    outcomes.write_text(f"ID,responded\n{ids[0]},1\n{ids[1]},maybe\n", encoding="utf-8")
    assert main(["campaign", "results", "--audience", str(out), "--outcomes", str(outcomes)]) == 2
    assert capsys.readouterr().err.strip() == "error: outcomes: responded must be 0 or 1; rows 2"
    assert main(["campaign", "results", "--audience", str(tmp_path / "none.csv"), "--outcomes", str(outcomes)]) == 2
    assert "--audience: no file" in capsys.readouterr().err
