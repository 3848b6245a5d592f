"""Retraining (core.versions.training) and its dashboard bridge (Services: uploads, retrain, comparison, fallback)."""
from __future__ import annotations

import base64
import io
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pandas as pd
import pytest

from core.versions import training
from core.fitting.matching import renumber
from core.reading.loading import DataFileError
from core.versions.pipeline import prepare, train
from core.versions.registry import Registry, RegistryError
from core.fitting.stability import adjusted_rand
from core.versions.pipeline import retrain
from core.versions.training import STEPS, Reference, RetrainCancelled
from tests.conftest import SAMPLE

FAST = dict(sweep_max=4, stability_resamples=3, drift_resamples=2)


@pytest.fixture(scope="module")
def sample_frame() -> pd.DataFrame:
    """The sample as text columns, to write variants of it."""
    return pd.read_csv(SAMPLE, sep="\t", dtype=str, keep_default_na=False)


def _tsv(frame: pd.DataFrame) -> bytes:
    return frame.to_csv(sep="\t", index=False).encode()


@pytest.fixture()
def active(tmp_path):
    """A registry with an active model on the sample, and its Reference (names renamed by a user)."""
    registry = Registry(tmp_path / "models")
    version, model, meta = train(SAMPLE, registry=registry)
    names = [f"User name {i}" for i in range(model.k)]
    registry.update_meta(version, segment_names=names)
    return registry, Reference(model, version, names, prepare(SAMPLE).frame)


# ------------------------------------------------------------------------------------------ workflow
def test_steps_reported_in_order_and_candidate_not_active(active):
    registry, reference = active
    seen = []
    result = retrain(SAMPLE, registry=registry, reference=reference, seed=7,
                     progress=lambda done, total, step: seen.append((done, total, step)), **FAST)
    assert [s for _, _, s in seen] == list(STEPS) + ["done"]
    assert [d for d, _, _ in seen] == list(range(len(STEPS) + 1))
    assert {t for _, t, _ in seen} == {len(STEPS)}
    assert result.version == "v0002"
    assert registry.active_version() == reference.version  # a candidate waits for a person to activate it
    saved = registry.metadata("v0002")
    assert saved["active"] is False and saved["identity"]["reference_version"] == reference.version
    assert saved["sweep"]["k_min"] == 2 and saved["sweep"]["k_max"] == 4
    assert saved["sweep"]["recommended_k"] in (2, 3, 4)
    assert saved["stability"]["resamples"] == 3 and 0 < saved["stability"]["mean_jaccard"] <= 1
    assert len(saved["stability"]["per_segment"]) == result.model.k
    assert saved["stability"]["customers"] == saved["n_customers"]  # all of them: below STABILITY_MAX_ROWS


@pytest.mark.parametrize("stop_before", ["load", "fit", "save"])
def test_cancel_stops_before_the_step_and_saves_nothing(active, stop_before):
    registry, reference = active
    seen = []
    with pytest.raises(RetrainCancelled, match=f"before the step '{stop_before}'; nothing was saved"):
        retrain(SAMPLE, registry=registry, reference=reference,
                progress=lambda d, t, step: seen.append(step),
                should_stop=lambda: STEPS[len(seen)] == stop_before, **FAST)
    assert seen == list(STEPS[:STEPS.index(stop_before)])
    assert [v["version"] for v in registry.versions()] == [reference.version]
    assert not (registry.root / "v0002.npz").exists()
    # The lock was released: the next run goes through.
    assert retrain(SAMPLE, registry=registry, reference=reference, **FAST).version == "v0002"


def test_names_and_numbers_follow_the_segments(active):
    """A reference whose segments are numbered in another order: the candidate takes that numbering."""
    registry, reference = active
    ref = reference.model
    perm = np.array([3, 0, 5, 1, 4, 2])
    renumber(ref, perm)  # reference segment j becomes number perm[j]
    names = [None] * ref.k
    for j, p in enumerate(perm):
        names[p] = reference.names[j]
    reference.names = names
    result = retrain(SAMPLE, registry=registry, reference=reference, seed=11, **FAST)
    model = result.model
    frame = result.prepared.frame
    # Same customers, same pipeline: every customer keeps its segment number and every segment its name.
    assert (model.predict(frame) == ref.predict(frame)).mean() > 0.9  # about 0.2 if the numbers did not follow
    assert result.meta["segment_names"] == names
    assert result.meta["identity"]["method"] == "centroids"
    assert sorted(result.meta["generated_names"]) != sorted(names)  # generated persona names were replaced
    comparison = result.comparison
    assert [r["matched"] for r in comparison["segments"]] == list(range(6))
    assert not any(r["renamed"] for r in comparison["segments"])


def test_fewer_segments_stay_numbered_0_to_k_and_carry_matched_names(active):
    registry, reference = active
    result = retrain(SAMPLE, registry=registry, reference=reference, k=4, **FAST)
    model = result.model
    assert sorted(np.unique(model.labels_).tolist()) == [0, 1, 2, 3]
    assert np.array_equal(model.predict(result.prepared.frame), model.labels_)
    rows = result.comparison["segments"]
    assert all(r["matched"] is not None and r["name"] == reference.names[r["matched"]] for r in rows)
    assert [r["matched"] for r in rows] == sorted(r["matched"] for r in rows)  # the reference's order kept
    assert len(result.comparison["unmatched_reference"]) == 2


def test_more_segments_keep_reference_numbers_and_name_the_new_ones(active):
    registry, reference = active
    result = retrain(SAMPLE, registry=registry, reference=reference, k=8, **FAST)
    names = result.meta["segment_names"]
    assert names[:6] == reference.names
    assert len(set(names)) == 8 and result.comparison["segments"][7]["matched"] is None
    assert result.comparison["segments"][7]["renamed"] is True


def test_other_features_match_by_shared_customers(active):
    registry, reference = active
    result = retrain(SAMPLE, registry=registry, reference=reference, features=["Income", "Total_Spending", "Age"],
                     **FAST)
    assert result.meta["identity"]["method"] == result.comparison["method"] == "shared customers"
    assert result.comparison["segments"][0]["distance"] is None
    rows = result.comparison["segments"]
    # Each match is the active segment holding the most of that candidate segment's customers (Hungarian
    # maximises the total, so check the total against every other assignment's is not needed: spot-check one).
    assert all(0 <= r["overlap"] <= 1 for r in rows) and max(r["overlap"] for r in rows) > 0.5


def test_comparison_values_on_a_changed_file(active, sample_frame):
    """New file: part of the old customers plus customers under new IDs, with incomes 40 % higher."""
    registry, reference = active
    new = sample_frame.iloc[:1600].copy()
    new.loc[new.index[1000:], "ID"] = (new["ID"].iloc[1000:].astype(int) + 100_000).astype(str)
    income = pd.to_numeric(new["Income"], errors="coerce") * 1.4
    new["Income"] = income.round().astype("Int64").astype(str).replace("<NA>", "")
    result = retrain(_tsv(new), name="later.tsv", registry=registry, reference=reference, **FAST)
    comp = result.comparison
    frame = result.prepared.frame
    ref_labels = pd.Series(reference.model.predict(reference.frame), index=reference.frame["ID"].to_numpy())
    cand_labels = pd.Series(result.model.predict(frame), index=frame["ID"].to_numpy())
    common = ref_labels.index.intersection(cand_labels.index)
    assert comp["n_common"] == len(common) and 900 < len(common) < 1000
    assert comp["ari_common"] == pytest.approx(adjusted_rand(ref_labels[common], cand_labels[common]), abs=1e-6)
    from sklearn.metrics import adjusted_rand_score
    assert comp["ari_common"] == pytest.approx(adjusted_rand_score(ref_labels[common], cand_labels[common]), abs=1e-6)
    ref_share = np.bincount(ref_labels.to_numpy(), minlength=6) / len(ref_labels)
    for row in comp["segments"]:
        share = float((cand_labels.to_numpy() == row["segment"]).mean())
        assert row["share"] == pytest.approx(share, abs=1e-6)
        assert row["share_change"] == pytest.approx(share - ref_share[row["matched"]], abs=1e-6)
    assert comp["drift"]["recommendation"] == "retrain"
    income_psi = next(f for f in comp["drift"]["features"] if f["feature"] == "Income")
    assert income_psi["psi"] >= 0.25 and income_psi["band"] == "significant shift"
    assert comp["n_candidate"] == len(frame) and comp["n_reference"] == len(reference.frame)
    assert result.meta["data_source"] == "later.tsv"


def test_bad_file_and_bad_k_save_nothing(active):
    registry, reference = active
    with pytest.raises(DataFileError, match="not a text file"):
        retrain(b"\x00\x01\x02" * 500, name="x.csv", registry=registry, reference=reference, **FAST)
    with pytest.raises(ValueError, match="k must be between 2 and"):
        retrain(SAMPLE, registry=registry, reference=reference, k=1, **FAST)
    assert len(registry.versions()) == 1


def test_one_training_at_a_time(active):
    registry, reference = active
    with registry.training_lock():
        with pytest.raises(RegistryError, match="another model is being trained"):
            retrain(SAMPLE, registry=registry, reference=reference, **FAST)
    assert retrain(SAMPLE, registry=registry, reference=reference, **FAST).version == "v0002"


def test_training_lock_is_shared_across_processes_and_freed_when_the_holder_dies(tmp_path):
    registry = Registry(tmp_path)
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {os.getcwd()!r})
        from core.versions.registry import Registry
        with Registry({str(tmp_path)!r}).training_lock():
            print("locked", flush=True)
            time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with pytest.raises(RegistryError, match="another model is being trained"):
            with registry.training_lock(wait=0.3):
                pass
        assert time.monotonic() - started >= 0.3
    finally:
        proc.kill()
        proc.wait(10)
    with registry.training_lock():  # the operating system released the killed holder's lock
        pass


# ------------------------------------------------------------------------------------------ upload checks
def test_check_upload_names_sizes_and_types():
    assert training.check_upload("C:\\fakepath\\customers.CSV", 10, 100) == "customers.CSV"
    assert training.check_upload("../../etc/people.tsv", 10, 100) == "people.tsv"
    with pytest.raises(DataFileError, match=r"book.xlsx is a .xlsx file; .* \(in Excel use File > Save As > CSV\)"):
        training.check_upload("book.xlsx", 10, 100)
    with pytest.raises(DataFileError, match="a file without an extension"):
        training.check_upload("customers", 10, 100)
    with pytest.raises(DataFileError, match="is empty"):
        training.check_upload("a.csv", 0, 100)
    with pytest.raises(DataFileError, match=r"a.csv is 2.0 MB; the upload limit is 1.0 MB"):
        training.check_upload("a.csv", 2 * 1024 * 1024, 1024 * 1024)
    assert training.parse_upload_limit(None) == 50 * 1024 * 1024
    assert training.parse_upload_limit("0.5") == 512 * 1024
    for bad in ("-1", "lots", "nan"):
        with pytest.raises(ValueError, match="SEGMENTLENS_MAX_UPLOAD_MB"):
            training.parse_upload_limit(bad)


def test_preview_shows_no_personal_columns():
    frame = prepare(SAMPLE).frame
    shown = training.preview(frame, rows=3)
    assert list(shown.columns) == list(training.PREVIEW_COLUMNS) and len(shown) == 3
    assert not {"Income", "Year_Birth", "Education", "Marital_Status", "Kidhome", "Teenhome"} & set(shown.columns)
    assert shown["Dt_Customer"].str.match(r"^\d{4}-\d{2}-\d{2}$").all()


# ------------------------------------------------------------------------------------------ Services
@pytest.fixture()
def services(tmp_path, monkeypatch):
    """Services on a fresh registry with a model trained on the sample; uploads under tmp_path/cache."""
    from dashboard.services import Services

    monkeypatch.setenv("SEGMENTLENS_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("SEGMENTLENS_MAX_UPLOAD_MB", raising=False)
    registry = Registry(tmp_path / "models")
    train(SAMPLE, registry=registry)
    return Services(registry, None, SAMPLE)


def _data_url(data: bytes) -> str:
    return "data:text/csv;base64," + base64.b64encode(data).decode()


def test_accept_upload_keeps_it_under_a_server_made_name(services, tmp_path):
    report = services.accept_upload(_data_url(SAMPLE.read_bytes()), "../../evil/../customers.tsv")
    assert report["name"] == "customers.tsv"
    kept = list((tmp_path / "cache" / "uploads").iterdir())
    assert [p.name for p in kept] == [f"{report['token']}.upload"] and len(report["token"]) == 32
    assert kept[0].read_bytes() == SAMPLE.read_bytes()
    assert report["cleaning"]["rows_read"] == 2240 and report["rows_used"] == 2212
    assert report["load"]["delimiter"] == "\t" and report["load"]["unreadable"] == {}
    assert set(report["preview"][0]) == set(training.PREVIEW_COLUMNS)
    assert not (tmp_path / "evil").exists()


def test_refused_uploads_keep_nothing(services, tmp_path, monkeypatch):
    with pytest.raises(DataFileError, match="not a text file"):
        services.accept_upload(_data_url(bytes(range(256)) * 50), "x.csv")
    with pytest.raises(DataFileError, match="is a .json file"):
        services.accept_upload(_data_url(b"{}"), "x.json")
    with pytest.raises(DataFileError, match="arrived incomplete"):
        services.accept_upload("data:text/csv;base64,@@@@", "x.csv")
    monkeypatch.setenv("SEGMENTLENS_MAX_UPLOAD_MB", "0.01")
    with pytest.raises(DataFileError, match="the upload limit is 10 KB"):
        services.accept_upload(_data_url(SAMPLE.read_bytes()), "x.csv")
    folder = tmp_path / "cache" / "uploads"
    assert not folder.exists() or list(folder.iterdir()) == []
    for token in ("../models/v0001", "A" * 32, None, "0" * 32):
        with pytest.raises(ValueError, match="upload"):
            services.retrain_upload(token, "x.csv", 6, ["Age", "Income"])


def test_services_retrain_compare_activate_and_report(services, sample_frame):
    later = sample_frame.iloc[200:].copy()
    report = services.accept_upload(_data_url(_tsv(later)), "later.tsv")
    sweep = services.upload_sweep(report["token"], ["Age", "Income", "Total_Spending"])
    assert 2 <= sweep["recommended_k"] <= 10 and sweep["reason"].startswith(f"k={sweep['recommended_k']}")
    steps = []
    result = services.retrain_upload(report["token"], "C:\\x\\later.tsv", 6, None,
                                     progress=lambda d, t, s: steps.append(s))
    assert steps[-1] == "done" and result["version"] == "v0002" and result["name"] == "later.tsv"
    meta = services.registry.metadata("v0002")
    assert meta["data_path"].startswith(str(services.registry.root.resolve() / "data"))
    assert services.registry.active_version() == "v0001"
    comp = services.comparison("v0002")
    assert comp["reference_version"] == "v0001" and comp["n_common"] == result["rows_used"]
    table = services.versions_table()
    assert [r["version"] for r in table] == ["v0002", "v0001"]
    assert table[0]["stability"] == meta["stability"]["mean_jaccard"] and table[1]["stability"] is None
    assert table[1]["active"] and not table[0]["active"]

    services.activate_version("v0002")
    a = services.analysis()
    assert a.version == "v0002" and a.source == "later.tsv" and len(a.frame) == result["rows_used"]
    assert services.comparison("v0002") == {"same": True, "reference_version": "v0002"}
    # The old version compared with the new active one: computed now, on v0001's own training file.
    back = services.comparison("v0001")
    assert back["reference_version"] == "v0002" and back["n_candidate"] == 2212
    with pytest.raises(RegistryError, match="active model"):
        services.delete_version("v0002")
    assert services.rollback_version() == "v0001"
    assert services.delete_version("v0002") == "v0002"

    services.rename_segment(0, "<b>=Top</b>")
    page = services.report_html()
    assert "&lt;b&gt;=Top&lt;/b&gt;" in page and "<b>=Top" not in page
    assert page.count('class="card"') == 6
    csv_text = services.membership_csv()
    assert "'<b>=Top</b>" not in csv_text.splitlines()[0] and ",<b>=Top</b>," in csv_text  # starts with '<'
    services.rename_segment(0, "=Top")
    rows = pd.read_csv(io.StringIO(services.membership_csv()))
    assert set(rows.loc[rows["segment"] == 0, "segment_name"]) == {"'=Top"}


def test_a_bad_upload_limit_setting_falls_back_to_the_default(services, monkeypatch):
    monkeypatch.setenv("SEGMENTLENS_MAX_UPLOAD_MB", "lots")
    assert services.upload_limit() == 50 * 1024 * 1024
    monkeypatch.setenv("SEGMENTLENS_MAX_UPLOAD_MB", "2")
    assert services.upload_limit() == 2 * 1024 * 1024


def test_retrain_without_the_active_models_data_still_carries_names(services, sample_frame, monkeypatch):
    """The active model's data file has gone: the candidate still takes its names, only the comparison is lost."""
    services.rename_segment(2, "Loyal core")  # a name the data itself would never generate
    report = services.accept_upload(_data_url(_tsv(sample_frame)), "again.tsv")
    monkeypatch.setattr(services, "analysis", lambda: (_ for _ in ()).throw(DataFileError("no such file: x.tsv")))
    result = services.retrain_upload(report["token"], "again.tsv", 6, None)
    meta = services.registry.metadata(result["version"])
    assert meta["segment_names"] == services.segment_names() and meta["segment_names"][2] == "Loyal core"
    assert "comparison" not in meta
