"""What a version stores beside its model: mapping, aggregates, sample, views (checked, replaced
atomically, removed with the version, never executed)."""
import json
import os
import time

import pytest

from core.fitting.model import SegmentationModel
from core.versions.registry import Registry, RegistryError
from tests.helpers import planted_frame


@pytest.fixture()
def model():
    frame, _ = planted_frame(n_per=30)
    return SegmentationModel(k=3).fit(frame)


def test_saved_with_artifacts_read_back_and_verified(tmp_path, model):
    reg = Registry(tmp_path)
    mapping = json.dumps({"input": "canonical", "features": model.features}).encode()
    version = reg.save(model, {"k": 3}, artifacts={"mapping": mapping})
    assert reg.artifact(version, "mapping") == mapping
    assert reg.artifact_json(None, "mapping")["input"] == "canonical"
    assert reg.artifact(version, "views") is None
    record = reg.metadata_entry(version)["artifacts"]["mapping"]
    assert record["file"].startswith(f"{version}.mapping.") and record["file"].endswith(".json")
    assert (tmp_path / record["file"]).read_bytes() == mapping
    assert reg.verify(version)[0]["ok"]
    (tmp_path / record["file"]).write_bytes(mapping[:-1] + b" ")
    with pytest.raises(RegistryError, match="fails its checksum"):
        reg.artifact(version, "mapping")
    assert not reg.verify(version)[0]["ok"]


def test_put_replaces_old_file_and_unknown_kind_refused(tmp_path, model):
    reg = Registry(tmp_path)
    version = reg.save(model, {"k": 3})
    first = reg.put_artifact(version, "views", b'{"a": 1}')
    second = reg.put_artifact(version, "views", b'{"a": 2}')
    assert first["file"] != second["file"]
    assert not (tmp_path / first["file"]).exists() and (tmp_path / second["file"]).exists()
    assert reg.artifact_json(version, "views") == {"a": 2}
    with pytest.raises(RegistryError, match="unknown artifact"):
        reg.put_artifact(version, "pickle", b"x")
    with pytest.raises(RegistryError, match="no model version"):
        reg.put_artifact("v0042", "views", b"{}")


def test_delete_and_gc_remove_artifacts(tmp_path, model):
    reg = Registry(tmp_path)
    v1 = reg.save(model, {"k": 3}, artifacts={"views": b"{}", "aggregates": b"[]"})
    reg.save(model, {"k": 3})
    files = [r["file"] for r in reg.metadata_entry(v1)["artifacts"].values()]
    removed = reg.delete(v1)
    assert {r["path"] for r in removed["removed"]} >= set(files)
    assert not any((tmp_path / f).exists() for f in files)
    stray = tmp_path / "v0002.views.0123456789ab.json"
    stray.write_bytes(b"{}")
    old = time.time() - 7200
    os.utime(stray, (old, old))
    assert any(r["path"] == stray.name for r in reg.gc()["removed"]) and not stray.exists()


def test_malformed_artifact_record_refused(tmp_path, model):
    reg = Registry(tmp_path)
    version = reg.save(model, {"k": 3}, artifacts={"views": b"{}"})
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["versions"][version]["artifacts"]["views"]["file"] = "../../etc/passwd"
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RegistryError, match="does not match its version"):
        reg.artifact(version, "views")
