"""Registry safety: arrays-only model files, one-time pickle conversion, manifest recovery, verify, gc."""
import hashlib
import io
import json
import os
import time

import joblib
import numpy as np
import pytest

from core.fitting.model import SegmentationModel
from core.versions.pipeline import fit_model, prepare
from core.versions.registry import Registry, RegistryError
from tests.conftest import SAMPLE
from tests.helpers import planted_frame

HOUR = 3600


@pytest.fixture()
def model():
    frame, _ = planted_frame(n_per=40)
    return SegmentationModel(k=3).fit(frame)


@pytest.fixture(scope="module")
def sample_fit():
    prepared = prepare(SAMPLE)
    return prepared, fit_model(prepared, k=6, n_init=2)


def _manifest(root):
    return json.loads((root / "manifest.json").read_text())


def _write_manifest(root, manifest):
    (root / "manifest.json").write_text(json.dumps(manifest))


def _age(path, seconds):
    then = time.time() - seconds
    os.utime(path, (then, then))


def _npz_bytes(**arrays):
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def _point_entry_at(root, version, data):
    """What an attacker with write access to both the file and the manifest could do."""
    (root / f"{version}.npz").write_bytes(data)
    manifest = _manifest(root)
    manifest["versions"][version].update(sha256=hashlib.sha256(data).hexdigest(), bytes=len(data))
    _write_manifest(root, manifest)


# ---------------------------------------------------------------------- arrays round trip
def test_arrays_round_trip_scores_exactly_on_the_sample(sample_fit, tmp_path):
    prepared, fitted = sample_fit
    frame = prepared.frame
    again = SegmentationModel.from_arrays(fitted.to_arrays())
    assert np.array_equal(again.labels_, fitted.labels_) and again.labels_.dtype == fitted.labels_.dtype
    assert np.array_equal(again.distances(frame), fitted.distances(frame))
    assert again.score(frame).equals(fitted.score(frame))  # segment, confidence, typicality, bit for bit
    assert again.score_one(frame[fitted.features].iloc[7].tolist()) == fitted.score_one(
        frame[fitted.features].iloc[7].tolist())
    assert (again.k, again.features, again.seed, again.n_init, again.inertia_, again.n_samples_) == (
        fitted.k, fitted.features, fitted.seed, fitted.n_init, fitted.inertia_, fitted.n_samples_)
    # Through the registry: the file is a zip of plain arrays that numpy reads without pickle.
    reg = Registry(tmp_path)
    version = reg.save(fitted, {"k": 6, "features": fitted.features})
    assert reg.file_path(version) == tmp_path / f"{version}.npz"
    with np.load(reg.file_path(version), allow_pickle=False) as npz:
        assert all(npz[name].dtype != object for name in npz.files)
        assert json.loads(str(npz["params"]))["features"] == fitted.features
    loaded, meta = reg.load(version)
    assert loaded.score(frame).equals(fitted.score(frame)) and np.array_equal(loaded.labels_, fitted.labels_)


def test_model_fitted_on_chunks_has_no_labels_and_round_trips():
    frame, _ = planted_frame(n_per=40)
    chunked = SegmentationModel(k=3).fit(iter([frame.iloc[:60], frame.iloc[60:]]))
    arrays = chunked.to_arrays()
    assert "labels_" not in arrays
    again = SegmentationModel.from_arrays(arrays)
    assert again.labels_ is None and again.score(frame).equals(chunked.score(frame))


@pytest.mark.parametrize("change, message", [
    (lambda a: a.update(centroids_=a["centroids_"][:2]), r"centroids_ has shape \(2, 7\), expected \(3, 7\)"),
    (lambda a: a.update(mean_=a["mean_"][:3]), "mean_ has shape"),
    (lambda a: a.update(member_counts=a["member_counts"] + 1), "member_distances has shape"),
    (lambda a: a.update(labels_=a["labels_"] + 5), "labels_ must be segment numbers 0-2"),
    (lambda a: a.update(scale_=np.zeros_like(a["scale_"])), "scale_ must be positive"),
    (lambda a: a.update(extra=np.zeros(2)), "unexpected array"),
    (lambda a: a.pop("centroids_"), "missing array"),
    (lambda a: a.update(params=np.array("{")), "params is not valid JSON"),
])
def test_from_arrays_names_what_is_wrong(model, change, message):
    arrays = model.to_arrays()
    change(arrays)
    with pytest.raises(ValueError, match=message):
        SegmentationModel.from_arrays(arrays)


# ---------------------------------------------------------------------- refused files
def test_tampered_npz_is_refused(tmp_path, model):
    reg = Registry(tmp_path)
    version = reg.save(model, {"k": 3})
    path = reg.file_path(version)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(RegistryError, match=f"model {version}: file {version}.npz fails its checksum"):
        reg.load(version)


def test_npz_with_an_object_array_is_refused_without_running_it(tmp_path, model):
    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self):
            return (marker.touch, ())

    reg = Registry(tmp_path / "models")
    version = reg.save(model, {"k": 3})
    arrays = model.to_arrays()
    arrays["mean_"] = np.array([Exploit()] * 7, dtype=object)  # savez pickles object arrays
    _point_entry_at(reg.root, version, _npz_bytes(**arrays))  # the checksum matches: only the format protects
    with pytest.raises(RegistryError, match="holds an object array, which only pickle could read"):
        reg.load(version)
    assert not marker.exists()


def test_pickle_in_place_of_npz_is_refused(tmp_path, model):
    reg = Registry(tmp_path)
    version = reg.save(model, {"k": 3})
    buffer = io.BytesIO()
    joblib.dump({"format": 1, "model": model}, buffer)
    _point_entry_at(tmp_path, version, buffer.getvalue())
    with pytest.raises(RegistryError, match="is not a valid model file"):
        reg.load(version)


def test_file_that_disagrees_with_its_manifest_k_is_refused(tmp_path, model):
    reg = Registry(tmp_path)
    version = reg.save(model, {"k": 4})
    with pytest.raises(RegistryError, match=f"model {version}: file {version}.npz has k=3 but the manifest says k=4"):
        reg.load(version)


# ---------------------------------------------------------------------- legacy .joblib versions
def _legacy_registry(root, model, *, meta=None, tamper=False):
    """A registry exactly as releases before .npz wrote it: vNNNN.joblib + a format-1 manifest."""
    root.mkdir(parents=True, exist_ok=True)
    path = root / "v0001.joblib"
    joblib.dump({"format": 1, "model": model}, path, compress=3)
    data = path.read_bytes()
    meta = meta or {"k": model.k, "features": model.features, "segment_names": ["a", "b", "c"]}
    manifest = {"format": 1, "active": "v0001", "history": [], "versions": {"v0001": {
        "file": "v0001.joblib", "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data),
        "created": "2026-11-01T10:00:00+00:00", "meta": meta}}}
    (root / "manifest.json").write_text(json.dumps(manifest))
    if tamper:
        class Exploit:
            def __reduce__(self):
                return (root.joinpath("pwned").touch, ())
        joblib.dump({"format": 1, "model": Exploit()}, path)
    return data


def test_legacy_joblib_version_is_converted_once(tmp_path, model, capsys):
    frame, _ = planted_frame(n_per=40)
    old = _legacy_registry(tmp_path, model)
    reg = Registry(tmp_path)
    assert reg.file_path("v0001").name == "v0001.joblib"
    loaded, meta = reg.load()
    assert loaded.score(frame).equals(model.score(frame)) and meta["segment_names"] == ["a", "b", "c"]
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "converted v0001.joblib (a pickle) to v0001.npz" in err
    assert not (tmp_path / "v0001.joblib").exists()
    entry = _manifest(tmp_path)["versions"]["v0001"]
    data = (tmp_path / "v0001.npz").read_bytes()
    assert entry["file"] == "v0001.npz" and entry["sha256"] == hashlib.sha256(data).hexdigest()
    assert entry["bytes"] == len(data) and entry["created"] == "2026-11-01T10:00:00+00:00"
    assert entry["meta"]["segment_names"] == ["a", "b", "c"]  # the old metadata is kept
    assert entry["converted_from"]["sha256"] == hashlib.sha256(old).hexdigest()
    # The second load reads arrays and says nothing; a fresh process object too.
    again, _ = Registry(tmp_path).load("v0001")
    assert again.score(frame).equals(model.score(frame))
    assert capsys.readouterr().err == ""
    assert (tmp_path / "manifest.json.bak").read_bytes() == (tmp_path / "manifest.json").read_bytes()


def test_legacy_joblib_that_fails_its_checksum_is_never_unpickled(tmp_path, model):
    _legacy_registry(tmp_path, model, tamper=True)
    with pytest.raises(RegistryError, match="v0001: file v0001.joblib fails its checksum"):
        Registry(tmp_path).load()
    assert not (tmp_path / "pwned").exists()
    assert (tmp_path / "v0001.joblib").exists() and _manifest(tmp_path)["versions"]["v0001"]["file"] == "v0001.joblib"


def test_verify_converts_legacy_versions(tmp_path, model):
    _legacy_registry(tmp_path, model)
    rows = Registry(tmp_path).verify()
    assert rows == [{"version": "v0001", "active": True, "file": "v0001.npz", "ok": True, "status": "ok"}]


# ---------------------------------------------------------------------- manifest recovery
def test_truncated_manifest_is_recovered_from_the_last_good_copy(tmp_path, model, capsys):
    reg = Registry(tmp_path)
    v1 = reg.save(model, {"k": 3})
    v2 = reg.save(model, {"k": 3, "note": "second"})
    good = (tmp_path / "manifest.json").read_bytes()
    assert (tmp_path / "manifest.json.bak").read_bytes() == good  # written with every manifest write
    (tmp_path / "manifest.json").write_bytes(good[: len(good) // 2])
    fresh = Registry(tmp_path)
    assert fresh.active_version() == v2 and [v["version"] for v in fresh.versions()] == [v1, v2]
    assert fresh.recovered and len(fresh.warnings) == 1
    assert "manifest.json is not valid JSON" in fresh.warnings[0] and "manifest.json.bak" in fresh.warnings[0]
    assert capsys.readouterr().err.count("warning:") == 1  # told once, not on every read
    assert fresh.load()[1]["note"] == "second"
    fresh.activate(v1)  # the next change rewrites the manifest from the recovered copy
    assert not fresh.recovered and fresh.warnings == []
    assert _manifest(tmp_path)["active"] == v1 and Registry(tmp_path).warnings == []


@pytest.mark.parametrize("damage", [b"", b"[1, 2]", b'{"versions": []}', b'{"versions": {}, "active": 3}'])
def test_invalid_manifest_without_backup_is_one_clear_error(tmp_path, model, damage):
    reg = Registry(tmp_path)
    reg.save(model, {})
    (tmp_path / "manifest.json.bak").unlink()
    (tmp_path / "manifest.json").write_bytes(damage)
    with pytest.raises(RegistryError, match="manifest.json is not a readable registry manifest"):
        Registry(tmp_path).versions()


def test_registry_from_before_backups_gets_one_on_first_read(tmp_path, model):
    reg = Registry(tmp_path)
    reg.save(model, {})
    (tmp_path / "manifest.json.bak").unlink()
    assert Registry(tmp_path).active_version() == "v0001"
    assert (tmp_path / "manifest.json.bak").read_bytes() == (tmp_path / "manifest.json").read_bytes()


# ---------------------------------------------------------------------- malformed entries
@pytest.mark.parametrize("change, problem", [
    (lambda e: e.pop("sha256"), "missing field(s) sha256"),
    (lambda e: e.update(bytes="12"), "'bytes' must be a whole number"),
    (lambda e: e.update(file="../v0001.npz"), "file name '../v0001.npz' contains a path separator or '..'"),
    (lambda e: e.update(file="sub/v0001.npz"), "file name 'sub/v0001.npz' contains a path separator or '..'"),
    (lambda e: e.update(file="v0002.npz"), "file name 'v0002.npz' is not v0001.npz"),
    (lambda e: e.update(file=None), "'file' must be a file name"),
    (lambda e: e.update(extra=1), "unknown field(s) extra"),
    (lambda e: e.update(meta=[]), "'meta' must be a JSON object"),
    (lambda e: e.update(sha256="abc"), "'sha256' must be 64 lowercase hex digits"),
])
def test_malformed_entry_is_a_registry_error_naming_the_version(tmp_path, model, change, problem):
    reg = Registry(tmp_path)
    reg.save(model, {"k": 3})
    v2 = reg.save(model, {"k": 3})
    manifest = _manifest(tmp_path)
    change(manifest["versions"]["v0001"])
    _write_manifest(tmp_path, manifest)
    expected = f"model v0001: its manifest entry is malformed: {problem}"
    for call in (lambda: reg.load("v0001"), lambda: reg.metadata("v0001"), reg.versions,
                 lambda: reg.activate("v0001"), lambda: reg.file_path("v0001")):
        with pytest.raises(RegistryError) as info:
            call()
        assert str(info.value).startswith(expected)
    listed = reg.versions(broken=True)
    assert listed[0] == {"version": "v0001", "active": False, "created": None, "problem": str(info.value)}
    assert listed[1]["version"] == v2 and reg.load()[1]["version"] == v2  # the others keep working
    assert [(r["version"], r["ok"]) for r in reg.verify()] == [("v0001", False), (v2, True)]
    result = reg.delete("v0001")  # a broken entry can be removed; only files named after it are touched
    assert [r["path"] for r in result["removed"]] == ["v0001.npz"]
    assert [v["version"] for v in reg.versions()] == [v2]


def test_broken_active_entry_is_reported_never_replaced(tmp_path, model):
    reg = Registry(tmp_path)
    v1 = reg.save(model, {"k": 3})
    v2 = reg.save(model, {"k": 3})
    manifest = _manifest(tmp_path)
    manifest["versions"][v2]["file"] = "/etc/passwd"
    _write_manifest(tmp_path, manifest)
    assert reg.active_version() == v2  # the pointer as written, so a caller can say "degraded"
    with pytest.raises(RegistryError, match=f"model {v2}: its manifest entry is malformed"):
        reg.load()
    manifest["active"] = "v0009"
    _write_manifest(tmp_path, manifest)
    assert reg.active_version() == "v0009"
    with pytest.raises(RegistryError, match="no model version 'v0009'"):
        reg.load()
    rows = reg.verify()
    assert rows[0] == {"version": "v0009", "active": True, "file": None, "ok": False,
                       "status": "the manifest's active version v0009 has no entry"}
    assert [(r["version"], r["ok"]) for r in rows[1:]] == [(v1, True), (v2, False)]


# ---------------------------------------------------------------------- verify
def test_verify_reports_each_version(tmp_path, model):
    reg = Registry(tmp_path)
    assert reg.verify() == []
    v1, v2, v3 = (reg.save(model, {"k": 3}) for _ in range(3))
    assert [(r["version"], r["active"], r["ok"], r["status"]) for r in reg.verify()] == [
        (v1, False, True, "ok"), (v2, False, True, "ok"), (v3, True, True, "ok")]
    path = reg.file_path(v1)
    path.write_bytes(path.read_bytes()[:-5])
    reg.file_path(v2).unlink()
    rows = {r["version"]: r for r in reg.verify()}
    assert "fails its checksum" in rows[v1]["status"] and not rows[v1]["ok"]
    assert "cannot be read" in rows[v2]["status"] and not rows[v2]["ok"]
    assert rows[v3]["ok"] and reg.verify(v3) == [rows[v3]]
    with pytest.raises(RegistryError, match="no model version 'v0042'"):
        reg.verify("v0042")


# ---------------------------------------------------------------------- disk bounded
def _save_on(reg, model, data: bytes):
    kept = reg.keep_data(data)
    return reg.save(model, {"k": 3, "data_path": str(kept.resolve())}, activate=False), kept


def test_delete_removes_the_data_copy_when_no_other_version_uses_it(tmp_path, model):
    reg = Registry(tmp_path)
    active = reg.save(model, {"k": 3, "data_path": str(SAMPLE)})  # a user's file: never touched
    shared_a, shared = _save_on(reg, model, b"shared file")
    shared_b, _ = _save_on(reg, model, b"shared file")
    alone, own = _save_on(reg, model, b"own file")
    result = reg.delete(alone)
    assert [r["path"] for r in result["removed"]] == [f"{alone}.npz", f"data/{own.name}"]
    assert result["files"] == 2 and result["bytes"] == sum(r["bytes"] for r in result["removed"])
    assert not own.exists()
    reg.delete(shared_a)
    assert shared.exists()  # still used by shared_b
    reg.delete(shared_b)
    assert not shared.exists() and SAMPLE.exists() and reg.active_version() == active


def test_gc_removes_unreferenced_data_old_temp_files_and_orphans(tmp_path, model):
    reg = Registry(tmp_path)
    used, kept = _save_on(reg, model, b"used by a version")
    stale = reg.keep_data(b"an upload nobody trained on")
    young = reg.keep_data(b"an upload being trained right now")
    hand = tmp_path / "data" / "notes.txt"  # not a kept-file name: left alone
    hand.write_text("mine")
    old_tmp = tmp_path / ".v0009.npz.abc123.tmp"
    old_tmp.write_bytes(b"x" * 100)
    new_tmp = tmp_path / ".manifest.json.def456.tmp"
    new_tmp.write_bytes(b"y")
    orphan = tmp_path / "v0007.npz"
    orphan.write_bytes(b"z" * 10)
    for path in (kept, stale, hand, old_tmp, orphan):
        _age(path, 2 * HOUR)
    result = reg.gc()
    assert sorted(r["path"] for r in result["removed"]) == sorted(
        [f"data/{stale.name}", old_tmp.name, orphan.name])
    assert result["files"] == 3 and result["bytes"] == len(b"an upload nobody trained on") + 100 + 10
    assert kept.exists() and young.exists() and hand.exists() and new_tmp.exists()
    assert reg.load(used)[0].k == 3
    assert reg.gc()["files"] == 0
    # Keeping the same upload again makes it young: a retrain about to use it is safe from gc.
    again = reg.keep_data(b"an upload nobody trained on")
    _age(young, 2 * HOUR)
    with reg.training_lock():
        assert reg.gc()["skipped"] == ["kept training data: a training run is in progress"]
    assert young.exists()
    assert [r["path"] for r in reg.gc()["removed"]] == [f"data/{young.name}"] and again.exists()


def test_gc_deletes_nothing_on_a_doubtful_manifest(tmp_path, model):
    reg = Registry(tmp_path)
    reg.save(model, {"k": 3})
    stale = reg.keep_data(b"old")
    _age(stale, 2 * HOUR)
    manifest = _manifest(tmp_path)
    manifest["versions"]["v0001"]["surprise"] = True
    _write_manifest(tmp_path, manifest)
    with pytest.raises(RegistryError, match="model v0001: its manifest entry is malformed: unknown field"):
        reg.gc()
    (tmp_path / "manifest.json").write_text("{trunc")
    with pytest.raises(RegistryError, match="recovered from manifest.json.bak"):
        reg.gc()
    assert stale.exists()


def test_rollback_refuses_a_previous_version_that_fails_verification(tmp_path, model):
    reg = Registry(tmp_path)
    v1 = reg.save(model, {"k": 3})
    v2 = reg.save(model, {"k": 3})
    assert reg.previous_version() == v1
    reg.file_path(v1).write_bytes(b"PK\x03\x04 not the file that was saved")
    with pytest.raises(RegistryError, match=f"model {v1}: file {v1}.npz fails its checksum"):
        reg.rollback()
    assert reg.active_version() == v2 and reg.previous_version() == v1
