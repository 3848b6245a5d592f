"""The model file's bytes (issue 29, cold 1M version): fast to load, the same model, and old files still load.

A model file is a zip of ``.npy`` arrays. The sorted member distances (one float per training customer)
barely compress, so they are stored as they are (inflating them was most of a 1M version's load); the
training labels are written in the smallest unsigned type that holds k and read back as ``intp``.
Files written by earlier releases (``numpy.savez_compressed``, int64 labels) load to the same model.
"""
import io
import zipfile

import numpy as np
import pytest

from core.fitting.model import SegmentationModel
from core.versions.pipeline import fit_model, prepare
from core.versions.registry import Registry, RegistryError
from core.versions.registry_format import model_from_bytes, model_to_bytes
from tests.conftest import SAMPLE


@pytest.fixture(scope="module")
def sample_fit():
    prepared = prepare(SAMPLE)
    return prepared, fit_model(prepared, k=6, n_init=2)


def _same_model(a: SegmentationModel, b: SegmentationModel, frame) -> None:
    assert np.array_equal(a.labels_, b.labels_) and a.labels_.dtype == b.labels_.dtype == np.intp
    assert all(np.array_equal(x, y) for x, y in zip(a.member_distances_, b.member_distances_))
    assert np.array_equal(a.centroids_, b.centroids_) and (a.k, a.features, a.seed) == (b.k, b.features, b.seed)
    assert a.score(frame).equals(b.score(frame))  # segment, confidence, typicality, bit for bit


def test_member_distances_are_stored_and_labels_are_small(sample_fit):
    prepared, fitted = sample_fit
    data = model_to_bytes(fitted)
    members = {m.filename: m for m in zipfile.ZipFile(io.BytesIO(data)).infolist()}
    assert members["member_distances.npy"].compress_type == zipfile.ZIP_STORED
    assert members["labels_.npy"].compress_type == zipfile.ZIP_DEFLATED
    with np.load(io.BytesIO(data), allow_pickle=False) as arrays:
        assert arrays["labels_"].dtype == np.uint8 and arrays["member_distances"].dtype == np.float64
    _same_model(model_from_bytes(data), fitted, prepared.frame)
    assert model_to_bytes(fitted) == data  # the same model, the same bytes (members carry a fixed date)


def test_a_file_of_an_earlier_release_loads_to_the_same_model(sample_fit):
    prepared, fitted = sample_fit
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **fitted.to_arrays())  # how model files were written before
    old = model_from_bytes(buffer.getvalue())
    _same_model(old, fitted, prepared.frame)
    _same_model(old, model_from_bytes(model_to_bytes(fitted)), prepared.frame)


def test_a_saved_version_loads_verified_from_the_new_file(sample_fit, tmp_path):
    prepared, fitted = sample_fit
    registry = Registry(tmp_path / "models")
    version = registry.save(fitted, {"k": fitted.k, "features": list(fitted.features)})
    loaded, _meta = registry.load(version)
    _same_model(loaded, fitted, prepared.frame)
    path = registry.file_path(version)
    path.write_bytes(path.read_bytes().replace(b"labels_", b"labelz_", 1))  # the checksum still guards it
    with pytest.raises(RegistryError, match="checksum"):
        registry.load(version)
