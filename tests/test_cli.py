"""`python -m core ...` as a user runs it: real processes, exit codes, JSON, messages."""
import csv
import json
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT, SAMPLE


def run(*args, env_models=None, check=None):
    env = None
    if env_models is not None:
        import os
        env = dict(os.environ, SEGMENTLENS_MODELS=str(env_models))
        env.pop("SEGMENTLENS_DATA", None)
    proc = subprocess.run([sys.executable, "-m", "core", *args], cwd=ROOT, capture_output=True, text=True,
                          env=env, timeout=120)
    if check is not None:
        assert proc.returncode == check, proc.stderr
    return proc


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A registry with the sample trained by `python -m core train --json` (v0001), and that run."""
    models = tmp_path_factory.mktemp("cli-models")
    return models, run("train", "--data", str(SAMPLE), "--json", env_models=models, check=0)


@pytest.fixture()
def models(trained):
    """The trained registry, read only: a test that adds versions copies it (tests may run in any order)."""
    return trained[0]


def test_help_on_every_command():
    for cmd in ([], ["train"], ["sweep"], ["score"], ["models"], ["models", "list"], ["models", "activate"],
                ["models", "rollback"], ["models", "verify"], ["models", "gc"], ["synth"], ["stability"], ["drift"]):
        proc = run(*cmd, "--help", check=0)
        assert "usage: python -m core" in proc.stdout


def test_train_json_contract(trained):
    proc = trained[1]
    out = json.loads(proc.stdout)
    assert {"model_version", "k", "n_customers", "silhouette", "features", "cleaning"} <= set(out)
    assert out["k"] == 6 and out["model_version"] == "v0001"
    assert out["features"] == ["Age", "Income", "Total_Spending", "NumWebPurchases", "NumStorePurchases",
                               "NumWebVisitsMonth", "Recency"]
    cleaning = out["cleaning"]
    assert cleaning["rows_read"] == 2240
    assert cleaning["rows_used"] == out["n_customers"] == cleaning["rows_read"] - sum(cleaning["dropped"].values())
    assert cleaning["dropped"]["missing_income"] > 0
    assert "load" in proc.stderr and "fit" in proc.stderr  # progress on stderr, not stdout


def test_train_options_no_activate_and_models_commands(models, tmp_path):
    import shutil

    models = shutil.copytree(models, tmp_path / "models")
    proc = run("train", "--data", str(SAMPLE), "--k", "4", "--features", "Income,Total_Spending,Age",
               "--seed", "3", "--no-activate", "--json", "--quiet", env_models=models, check=0)
    out = json.loads(proc.stdout)
    assert out["k"] == 4 and out["features"] == ["Income", "Total_Spending", "Age"] and proc.stderr == ""
    listed = json.loads(run("models", "list", "--json", env_models=models, check=0).stdout)
    assert [(v["version"], v["active"]) for v in listed] == [("v0001", True), ("v0002", False)]
    assert "v0002 is now active" in run("models", "activate", "v0002", env_models=models, check=0).stdout
    assert "v0001 is now active" in run("models", "rollback", env_models=models, check=0).stdout
    proc = run("models", "activate", "v0009", env_models=models, check=2)
    assert proc.stderr.strip() == "error: no model version 'v0009' (versions: v0001, v0002)"


def test_score_writes_membership_csv(models, tmp_path):
    out = tmp_path / "scores.csv"
    proc = run("score", "--data", str(SAMPLE), "--out", str(out), env_models=models, check=0)
    rows = list(csv.DictReader(out.open()))
    assert list(rows[0]) == ["ID", "segment", "segment_name", "confidence", "typicality"]
    assert 2000 < len(rows) < 2240
    assert all(0 <= float(r["confidence"]) <= 1 for r in rows)
    assert {r["segment"] for r in rows} == {str(i) for i in range(6)}
    assert "not scored" in proc.stderr


def test_sweep_json_and_text(models):
    out = json.loads(run("sweep", "--data", str(SAMPLE), "--k-min", "2", "--k-max", "5", "--json", check=0).stdout)
    assert [r["k"] for r in out["results"]] == [2, 3, 4, 5]
    assert out["recommended_k"] in (2, 3, 4, 5) and out["reason"].startswith(f"k={out['recommended_k']}")
    assert {"inertia", "silhouette", "calinski_harabasz", "davies_bouldin", "sizes"} <= set(out["results"][0])
    text = run("sweep", "--data", str(SAMPLE), "--k-max", "4", "--quiet", check=0).stdout
    assert "recommended k=" in text
    n = out["n_customers"]
    assert n >= 1000 and f"{n:,} customers" in text  # thousands separators in human output
    sizes = [line.split("  ")[-1] for line in text.splitlines()[1:4]]
    assert all(re.fullmatch(r"[\d,]+( / [\d,]+)+", s) for s in sizes) and "," in "".join(sizes)


def test_synth_writes_a_loadable_file(tmp_path):
    out = tmp_path / "s.tsv"
    run("synth", "--n", "300", "--seed", "5", "--out", str(out), check=0)
    from core.reading.loading import load_customers
    loaded = load_customers(out)
    assert len(loaded.frame) == 300 and loaded.info.delimiter == "\t"


@pytest.mark.parametrize("args, message", [
    (["train", "--data", "/nonexistent/file.csv"], "error: no such file: /nonexistent/file.csv"),
    (["train", "--data", str(SAMPLE), "--features", "Age,Shoe_Size"], "error: unknown feature(s) Shoe_Size"),
    (["train", "--data", str(SAMPLE), "--k", "1"], "--k must be at least 2"),
    (["train", "--data", str(SAMPLE), "--k", "abc"], "--k must be a whole number"),
    (["sweep", "--data", str(SAMPLE), "--k-min", "5", "--k-max", "3"], "error: --k-max (3) must be at least --k-min (5)"),
    (["score", "--data", str(SAMPLE), "--out", "/nonexistent/dir/x.csv"], "error: "),
    (["synth", "--out", "/nonexistent/dir/x.tsv"], "error: folder /nonexistent/dir does not exist"),
])
def test_bad_input_exits_2_with_one_line(args, message, models):
    proc = run(*args, env_models=models, check=2)
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert len([line for line in proc.stderr.splitlines() if line.startswith("error")]) <= 1


def test_broken_file_message(tmp_path, models):
    bad = tmp_path / "bad.csv"
    bad.write_text("ID,Income\n1,abc\n")
    proc = run("train", "--data", str(bad), env_models=models, check=2)
    assert "missing required column(s)" in proc.stderr and "Traceback" not in proc.stderr


def test_score_without_model(tmp_path):
    proc = run("score", "--out", str(tmp_path / "x.csv"), env_models=tmp_path / "empty", check=2)
    assert "train one first" in proc.stderr


def test_sweep_help_shows_help_and_default_of_every_option():
    from core.cli.commands import build_parser

    text = run("sweep", "--help", check=0).stdout
    sweep = build_parser()._subparsers._group_actions[0].choices["sweep"]
    for action in sweep._actions:
        if action.option_strings and action.dest != "help":
            assert action.help and "default" in action.help, action.option_strings
    flat = " ".join(text.split())
    for phrase in ("(default: 2)", "(default: 10)", "(default: 42)", "(default: 3)", "(default: 6)", "(default: 0,"):
        assert phrase in flat


def test_stability_table_has_segment_headers_and_separators():
    proc = run("stability", "--data", str(SAMPLE), "--k", "3", "--resamples", "2", "--n-init", "1", "--quiet", check=0)
    lines = proc.stdout.splitlines()
    header = next(line for line in lines if line.startswith("period"))
    assert header.split() == ["period", "customers", "ARI", "seg", "0", "seg", "1", "seg", "2"]
    rows = lines[lines.index(header) + 1:]
    last = [line for line in rows if re.match(r"\d{4}(Q\d|-\d\d)", line)][-1].split()
    assert re.fullmatch(r"\d,\d{3}", last[1]) and len(last) == 3 + 3 and all(v.endswith("%") for v in last[3:])
    assert re.search(r"\d,\d{3} customers, k=3", lines[0])


def test_score_writes_integer_ids_when_some_ids_were_unreadable(models, tmp_path):
    lines = SAMPLE.read_text().splitlines()
    lines[1] = "12a" + lines[1][lines[1].index("\t"):]
    lines[2] = lines[2][lines[2].index("\t"):]  # empty ID
    bad = tmp_path / "bad_ids.tsv"
    bad.write_text("\n".join(lines[:300]) + "\n")
    out = tmp_path / "scores.csv"
    proc = run("score", "--data", str(bad), "--out", str(out), env_models=models, check=0)
    rows = list(csv.DictReader(out.open()))
    assert rows and all(re.fullmatch(r"\d+", r["ID"]) for r in rows)  # 5524, never 5524.0
    assert len(rows) < 299 and "not scored" in proc.stderr


def test_exports_write_ids_as_whole_numbers():
    import numpy as np
    import pandas as pd

    from core.versions.exports import to_safe_csv

    frame = pd.DataFrame({"ID": [5524.0, np.nan, 12.0], "segment_name": ["=SUM(A1)", "b", "c"]})
    assert to_safe_csv(frame).splitlines() == ["ID,segment_name", "5524,'=SUM(A1)", ",b", "12,c"]
    with pytest.raises(ValueError, match=r"ID in row 2 of the export is not a whole number \('12a'\)"):
        to_safe_csv(pd.DataFrame({"ID": ["7", "12a"]}))


@pytest.fixture()
def small_registry(tmp_path):
    from core.fitting.model import SegmentationModel
    from core.versions.registry import Registry
    from tests.helpers import planted_frame

    reg = Registry(tmp_path / "reg")
    model = SegmentationModel(k=3).fit(planted_frame(n_per=30)[0])
    for _ in range(3):
        reg.save(model, {"k": 3, "n_customers": 12345, "metrics": {"silhouette": 0.5}})
    return reg


def test_models_verify_lines_and_exit_status(small_registry):
    root = small_registry.root
    proc = run("models", "verify", env_models=root, check=0)
    assert proc.stdout.splitlines() == ["ok     v0001: v0001.npz", "ok     v0002: v0002.npz",
                                        "ok     v0003 (active): v0003.npz"]
    path = small_registry.file_path("v0002")
    path.write_bytes(path.read_bytes()[:-3])
    proc = run("models", "verify", env_models=root, check=1)
    lines = proc.stdout.splitlines()
    assert len(lines) == 3 and lines[1].startswith("FAILED v0002: model v0002: file v0002.npz fails its checksum")
    assert "2 of 3 versions verified; 1 failed" in proc.stderr and "Traceback" not in proc.stderr
    out = json.loads(run("models", "verify", "--json", env_models=root, check=1).stdout)
    assert out["ok"] is False and [v["ok"] for v in out["versions"]] == [True, False, True]


def test_models_list_on_a_bad_manifest(small_registry):
    root = small_registry.root
    listed = run("models", "list", env_models=root, check=0)
    assert "n=12,345" in listed.stdout and listed.stderr == ""
    good = (root / "manifest.json").read_text()
    (root / "manifest.json").write_text(good[:40])
    proc = run("models", "list", env_models=root, check=0)  # recovered from the last good copy
    assert proc.stdout == listed.stdout
    assert len(proc.stderr.splitlines()) == 1 and proc.stderr.startswith("warning: manifest.json is not valid JSON")
    (root / "manifest.json.bak").unlink()
    proc = run("models", "list", env_models=root, check=2)
    assert len(proc.stderr.splitlines()) == 1
    assert proc.stderr.startswith("error: manifest.json is not a readable registry manifest")
    manifest = json.loads(good)
    manifest["versions"]["v0002"]["file"] = "../../etc/passwd"
    (root / "manifest.json").write_text(json.dumps(manifest))
    proc = run("models", "list", env_models=root, check=2)
    assert proc.stderr.splitlines() == ["error: model v0002: its manifest entry is malformed: file name "
                                        "'../../etc/passwd' contains a path separator or '..'"]
    assert proc.stdout == ""


def test_models_gc_reports_what_it_removed(small_registry):
    import os
    import time

    root = small_registry.root
    stale = small_registry.keep_data(b"x" * 1500)
    old = time.time() - 7200
    os.utime(stale, (old, old))
    proc = run("models", "gc", env_models=root, check=0)
    assert proc.stdout.splitlines() == [f"removed data/{stale.name} (1,500 bytes): training data no version uses",
                                        "removed 1 file (1,500 bytes)"]
    out = json.loads(run("models", "gc", "--json", env_models=root, check=0).stdout)
    assert out == {"removed": [], "files": 0, "bytes": 0, "skipped": []}


def test_train_twice_keeps_renames_numbers_and_offers_suggested_names(tmp_path, capsys):
    import numpy as np

    from core.cli.commands import main
    from core.versions.registry import Registry

    root = tmp_path / "m"
    assert main(["train", "--data", str(SAMPLE), "--models", str(root), "--quiet"]) == 0
    registry = Registry(root)
    first, meta1 = registry.load("v0001")
    # The active model numbers its segments in its own order (as after earlier refits and renames).
    from core.fitting.matching import renumber
    perm = np.array([3, 5, 0, 1, 4, 2])
    renumber(first, perm)
    names = [None] * 6
    for old, new in enumerate(perm):
        names[new] = meta1["segment_names"][old]
    names[2] = "Our VIPs"
    meta1 = {key: v for key, v in meta1.items() if key not in ("version", "created", "active")}
    meta1.update(segment_names=names, generated_names=names)
    reference_version = registry.save(first, meta1, activate=True)
    capsys.readouterr()
    # Another seed and fewer starts: k-means numbers its segments afresh; train matches them to the active model.
    assert main(["train", "--data", str(SAMPLE), "--models", str(root), "--seed", "7", "--n-init", "3",
                 "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    second, meta2 = Registry(root).load(out["model_version"])
    assert meta2["segment_names"][2] == "Our VIPs" and meta2["segment_names"] == names
    assert out["identity"]["method"] == "centroids" and out["identity"]["reference_version"] == reference_version
    # Segment i of the refit is the segment i of the first model: nearest centroids pair up by number.
    gap = np.linalg.norm(second.centroids_[:, None, :] - first.centroids_[None, :, :], axis=2)
    assert gap.argmin(axis=1).tolist() == list(range(6))
    assert isinstance(out["suggested_names"], list)
    for s in out["suggested_names"]:
        assert s["suggested"] == meta2["generated_names"][s["segment"]] and s["name"] == names[s["segment"]]


def test_parquet_synth_train_and_chunked_score(tmp_path):
    """`synth --out X.parquet`, `train --data X.parquet --chunk-rows`, `score --chunk-rows`: as the one-piece path."""
    data, root = tmp_path / "c.parquet", tmp_path / "models"
    run("synth", "--n", "2500", "--seed", "3", "--out", str(data), check=0)
    from core.reading.sources import is_parquet
    assert is_parquet(data)
    proc = run("train", "--data", str(data), "--models", str(root), "--chunk-rows", "1000", "--sample-size", "800",
               "--n-init", "2", "--json", "--quiet", check=0)
    out = json.loads(proc.stdout)
    from core.versions.registry import Registry
    registry = Registry(root)
    meta = registry.metadata_entry(out["model_version"])["meta"]
    assert meta["engine"]["mode"] == "streaming" and meta["data_source"] == "c.parquet"
    assert {"aggregates", "sample"} <= set(registry.metadata_entry(out["model_version"])["artifacts"])
    chunked, whole = tmp_path / "chunked.csv", tmp_path / "whole.csv"
    run("score", "--data", str(data), "--models", str(root), "--out", str(chunked), "--chunk-rows", "1000", check=0)
    run("score", "--data", str(data), "--models", str(root), "--out", str(whole), check=0)
    assert chunked.read_text() == whole.read_text() and len(chunked.read_text().splitlines()) == out["n_customers"] + 1


def test_bad_parquet_exits_2_and_registers_nothing(tmp_path):
    good, root = tmp_path / "good.parquet", tmp_path / "models"
    run("synth", "--n", "300", "--out", str(good), check=0)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(good.read_bytes()[:400])
    import pyarrow.parquet as pq
    pq.write_table(pq.read_table(good).drop_columns(["Recency"]), tmp_path / "no_recency.parquet")
    for name, message in (("broken.parquet", "broken.parquet"), ("no_recency.parquet", "Recency")):
        for args in (["train", "--chunk-rows", "1000"], ["train"]):
            proc = run(*args, "--data", str(tmp_path / name), "--models", str(root), check=2)
            lines = proc.stderr.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], proc.stderr
    assert not (root / "manifest.json").exists() and not list(root.glob("v*")) if root.exists() else True
