"""Model registry: versions, activate, rollback, delete, checksums, atomic writes, a killed save."""
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest

from core.fitting.model import SegmentationModel
from core.versions.registry import Registry, RegistryError
from tests.helpers import planted_frame


@pytest.fixture()
def model():
    frame, _ = planted_frame(n_per=40)
    return SegmentationModel(k=3).fit(frame)


def test_save_list_activate_rollback(tmp_path, model):
    reg = Registry(tmp_path)
    assert reg.active_version() is None and reg.versions() == []
    v1 = reg.save(model, {"k": 3, "note": "first"})
    v2 = reg.save(model, {"k": 3, "note": "second"})
    v3 = reg.save(model, {"k": 3}, activate=False)
    assert (v1, v2, v3) == ("v0001", "v0002", "v0003")
    assert reg.active_version() == v2
    listed = reg.versions()
    assert [v["version"] for v in listed] == [v1, v2, v3]
    assert [v["active"] for v in listed] == [False, True, False]
    assert listed[0]["note"] == "first" and listed[0]["created"]
    reg.activate(v3)
    assert reg.active_version() == v3
    assert reg.rollback() == v2
    assert reg.rollback() == v1
    with pytest.raises(RegistryError, match="nothing to roll back"):
        reg.rollback()


def test_load_round_trip_and_metadata(tmp_path, model):
    reg = Registry(tmp_path)
    v = reg.save(model, {"segment_names": ["a", "b", "c"]})
    loaded, meta = reg.load()
    assert meta["version"] == v and meta["active"] is True
    assert np.array_equal(loaded.centroids_, model.centroids_)
    reg.update_meta(v, segment_names=["x", "b", "c"])
    assert reg.metadata(v)["segment_names"] == ["x", "b", "c"]
    _, meta = reg.load(v)
    assert meta["segment_names"][0] == "x"  # a rename does not touch the checksummed file


def test_checksum_refuses_tampered_and_truncated(tmp_path, model):
    reg = Registry(tmp_path)
    v1 = reg.save(model, {})
    v2 = reg.save(model, {})
    path = reg.file_path(v2)
    assert path == tmp_path / f"{v2}.npz"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(RegistryError, match="fails its checksum"):
        reg.load(v2)
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(RegistryError, match="fails its checksum"):
        reg.load()
    with pytest.raises(RegistryError, match="fails its checksum"):
        reg.activate(v2)
    reg.activate(v1)
    assert reg.load()[1]["version"] == v1


def test_delete_rules(tmp_path, model):
    reg = Registry(tmp_path)
    v1 = reg.save(model, {})
    v2 = reg.save(model, {})
    with pytest.raises(RegistryError, match="active model"):
        reg.delete(v2)
    reg.delete(v1)
    assert [v["version"] for v in reg.versions()] == [v2]
    assert not (tmp_path / f"{v1}.npz").exists()
    with pytest.raises(RegistryError, match="no model version 'v0001'"):
        reg.activate(v1)
    assert reg.save(model, {}) == "v0003"  # numbers are never reused


def test_unknown_and_missing(tmp_path, model):
    reg = Registry(tmp_path)
    with pytest.raises(RegistryError, match="no active model"):
        reg.load()
    v = reg.save(model, {})
    (tmp_path / f"{v}.npz").unlink()
    with pytest.raises(RegistryError, match="cannot be read"):
        reg.load()
    (tmp_path / "manifest.json").write_text("{not json")
    assert [m["version"] for m in reg.versions()] == [v]  # recovered from the last good copy
    assert reg.recovered
    (tmp_path / "manifest.json.bak").unlink()  # and without one, a clear error
    with pytest.raises(RegistryError, match="not a readable registry manifest"):
        reg.versions()


def test_env_var_selects_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("SEGMENTLENS_MODELS", str(tmp_path / "elsewhere"))
    assert Registry().root == tmp_path / "elsewhere"


def test_no_temp_files_left_and_manifest_is_json(tmp_path, model):
    reg = Registry(tmp_path)
    for _ in range(3):
        reg.save(model, {})
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["active"] == "v0003" and set(manifest["versions"]) == {"v0001", "v0002", "v0003"}


def test_killed_mid_save_leaves_previous_version_active_and_loadable(tmp_path):
    """A real subprocess is killed (SIGKILL) while it writes a big model file."""
    frame, _ = planted_frame(n_per=40)
    reg = Registry(tmp_path)
    first = reg.save(SegmentationModel(k=3).fit(frame), {"note": "good"})
    script = textwrap.dedent(f"""
        import sys, time
        import numpy as np
        sys.path.insert(0, {str(os.getcwd())!r})
        import core.versions.registry as r
        from core.versions.registry import Registry
        real_write = r._atomic_write
        def slow_write(path, data):
            # Write the model file slowly so the parent can kill us mid-write.
            if path.name.endswith(".npz"):
                import os, tempfile
                fd, tmp = tempfile.mkstemp(prefix="." + path.name + ".", suffix=".tmp", dir=path.parent)
                with os.fdopen(fd, "wb") as fh:
                    for i in range(0, len(data), 4096):
                        fh.write(data[i:i + 4096]); fh.flush()
                        if i == 0:
                            print("writing", flush=True)
                        time.sleep(0.01)
                os.replace(tmp, path)
            else:
                real_write(path, data)
        r._atomic_write = slow_write
        from core.fitting.model import SegmentationModel
        from tests.helpers import planted_frame
        reg = Registry({str(tmp_path)!r})
        big = SegmentationModel(k=3).fit(planted_frame(n_per=40)[0])
        big.member_distances_ = [np.sort(np.random.default_rng(s).random(150_000)) for s in range(3)]  # ~3 MB
        reg.save(big, {{"note": "never finished"}})
        print("saved", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "writing"
    time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    assert proc.returncode == -signal.SIGKILL
    after = Registry(tmp_path)
    assert after.active_version() == first
    assert [v["version"] for v in after.versions()] == [first]
    model, meta = after.load()
    assert meta["note"] == "good" and model.k == 3
    assert not (tmp_path / "v0002.npz").exists()  # only a stray temp file may remain
    # The registry keeps working after the crash.
    assert after.save(model, {}) == "v0002"


def test_concurrent_saves_from_two_processes_get_distinct_versions(tmp_path):
    """Two processes save eight versions each at the same moment: sixteen distinct, loadable versions."""
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(os.getcwd())!r})
        from core.fitting.model import SegmentationModel
        from core.versions.registry import Registry
        from tests.helpers import planted_frame
        who, start = sys.argv[1], float(sys.argv[2])
        reg = Registry({str(tmp_path)!r})
        model = SegmentationModel(k=3).fit(planted_frame(n_per=20)[0])
        time.sleep(max(0.0, start - time.time()))  # both begin together
        saved = []
        for i in range(8):
            model.seed = (100 if who == "a" else 200) + i  # each file distinct: the seed is stored in it
            saved.append(reg.save(model, {{"who": who, "i": i}}))
        print(",".join(saved), flush=True)
    """)
    start = str(time.time() + 1.5)
    procs = [subprocess.Popen([sys.executable, "-c", script, who, start], stdout=subprocess.PIPE, text=True)
             for who in ("a", "b")]
    saved = [p.communicate(timeout=60)[0].strip().split(",") for p in procs]
    assert all(p.returncode == 0 for p in procs)
    every = saved[0] + saved[1]
    assert sorted(every) == [f"v{i:04d}" for i in range(1, 17)]
    reg = Registry(tmp_path)
    assert [v["version"] for v in reg.versions()] == sorted(every)
    for version in every:
        loaded, meta = reg.load(version)  # each file is complete and is the one its manifest entry names
        assert loaded.seed == (100 if meta["who"] == "a" else 200) + meta["i"]
    assert reg.active_version() in every
    assert not [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_keep_data_names_files_by_content(tmp_path):
    reg = Registry(tmp_path)
    first = reg.keep_data(b"ID\tIncome\n1\t2\n")
    assert first.parent == tmp_path / "data" and re.fullmatch(r"[0-9a-f]{16}\.txt", first.name)
    assert reg.keep_data(b"ID\tIncome\n1\t2\n") == first and first.read_bytes() == b"ID\tIncome\n1\t2\n"
    assert reg.keep_data(b"other") != first


def test_reads_follow_writes_from_another_registry_object(tmp_path, model):
    """Read caching must never hide a change made by another process (here: another object)."""
    reader, writer = Registry(tmp_path), Registry(tmp_path)
    v1 = writer.save(model, {"segment_names": ["a", "b", "c"]})
    assert reader.active_version() == v1
    v2 = writer.save(model, {})
    assert reader.active_version() == v2
    writer.update_meta(v1, segment_names=["x", "b", "c"])
    meta = reader.metadata(v1)
    assert meta["segment_names"] == ["x", "b", "c"]
    meta["segment_names"][0] = "changed by a caller"
    assert reader.metadata(v1)["segment_names"][0] == "x"  # callers get copies
    writer.rollback()
    assert reader.active_version() == v1
