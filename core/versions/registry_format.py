"""What a sound registry holds: manifest and entry rules, and model files as arrays (never pickle).

:mod:`core.versions.registry` does the disk work (locks, atomic writes, checksums); this module only
decides whether parsed JSON and a file's bytes are what they must be, and says why not in
one line. A model file is a zip of the ``.npy`` arrays of :meth:`SegmentationModel.to_arrays` (:func:`model_to_bytes`),
read back with ``allow_pickle=False``: an object array, a pickle or a malformed archive is
refused, never executed. A model of another algorithm than k-means also holds its ``algorithm``,
options, categorical features and their categories in the ``params`` text and its own parameters as
``algo__*`` arrays (numbers or text only); a file without them is a k-means model.
"""
from __future__ import annotations

import io
import re
import zipfile
import zlib

__all__ = ["FORMAT", "VERSION_RE", "ARTIFACTS", "artifact_file", "artifact_problem", "is_artifact_file", "manifest_problem",
           "entry_problem", "model_to_bytes", "model_from_bytes"]

FORMAT = 2  # 1: pickled .joblib files; 2: .npz arrays (format-1 entries are converted on first load)
VERSION_RE = re.compile(r"^v\d{4,}$")
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_MEMBER_DATE = (1980, 1, 1, 0, 0, 0)  # a model file's members: same model, same bytes
_PROBE_BYTES = 1 << 20
_ENTRY_REQUIRED = ("file", "sha256", "bytes", "created", "meta")
_ENTRY_OPTIONAL = ("converted_from", "artifacts")

# What a version may store beside its model file, and in which format (never pickle). One entry
# per kind: adding a kind of artifact is one line here.
#   mapping     JSON  the input kind and column mapping the version was trained with, its features
#   aggregates  JSON  per-segment aggregates over every customer (sizes, sums, means, quantiles)
#   sample      NPZ   a seeded stratified sample of prepared customers (numeric and text arrays only)
#   views       JSON  precomputed dashboard views for the version (analysis, profiles, map, sweep, ...)
#   value       JSON  customer value of a version trained on a transaction log (core.value: fits, segments, holdout)
#   value_customers NPZ  per-customer value statistics (ID, frequency, recency, T, values, segment) for look-ups
ARTIFACTS = {"mapping": "json", "aggregates": "json", "sample": "npz", "views": "json", "migration": "json",
             "value": "json", "value_customers": "npz"}
_ARTIFACT_FILE_RE = re.compile(r"^(v\d{4,})\.([a-z][a-z0-9_]{0,31})\.([0-9a-f]{12})\.(json|npz)$")


def artifact_file(version: str, name: str, sha256: str) -> str:
    """The file name of a version's artifact, e.g. ``v0003.views.1a2b3c4d5e6f.json``.

    The name carries the start of the content's SHA-256, so replacing an artifact writes a new
    file before the manifest points at it (a reader never sees a file that fails its checksum).
    """
    return f"{version}.{name}.{sha256[:12]}.{ARTIFACTS[name]}"


def artifact_problem(version: str, name, record) -> str | None:
    """Why one ``artifacts`` record of a manifest entry cannot be used (None when sound)."""
    if name not in ARTIFACTS:
        return f"unknown artifact {str(name)[:40]!r} (known: {', '.join(ARTIFACTS)})"
    if not isinstance(record, dict) or set(record) != {"file", "sha256", "bytes"}:
        return f"artifact {name}: expected an object with file, sha256 and bytes"
    if not isinstance(record["sha256"], str) or not _SHA_RE.match(record["sha256"]):
        return f"artifact {name}: 'sha256' must be 64 lowercase hex digits"
    if not isinstance(record["file"], str) or record["file"] != artifact_file(version, name, record["sha256"]):
        return f"artifact {name}: file name {str(record['file'])[:60]!r} does not match its version and checksum"
    size = record["bytes"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return f"artifact {name}: 'bytes' must be a whole number"
    return None


def is_artifact_file(name: str) -> bool:
    """Whether a file name has the shape of an artifact file (for garbage collection)."""
    return bool(_ARTIFACT_FILE_RE.match(name))


def manifest_problem(manifest) -> str | None:
    """Why a parsed manifest cannot be used as a whole.

    Parameters
    ----------
    manifest : object
        Parsed JSON.

    Returns
    -------
    str or None
        The problem in a few words; None when the structure is sound.
    """
    if not isinstance(manifest, dict):
        return "not a JSON object"
    if not isinstance(manifest.get("versions"), dict):
        return "no 'versions' object"
    fmt = manifest.get("format", 1)
    if not isinstance(fmt, int) or isinstance(fmt, bool) or fmt < 1:
        return f"'format' must be a whole number, got {fmt!r}"
    if fmt > FORMAT:
        return f"written by a newer SegmentLens (format {fmt}; this one reads up to {FORMAT})"
    active = manifest.get("active")
    if active is not None and not isinstance(active, str):
        return f"'active' must be a version name or null, got {active!r}"
    history = manifest.get("history", [])
    if not isinstance(history, list) or not all(isinstance(v, str) for v in history):
        return "'history' must be a list of version names"
    return None


def entry_problem(version, entry) -> str | None:
    """Why one manifest entry cannot be used.

    Parameters
    ----------
    version : str
    entry : object
        Parsed JSON of ``manifest["versions"][version]``.

    Returns
    -------
    str or None
        The problem (missing or unknown fields, wrong types, a file name with a path separator
        or ``..``); None when the entry is well formed.
    """
    if not isinstance(version, str) or not VERSION_RE.match(version):
        return "the version name is not of the form vNNNN"
    if not isinstance(entry, dict):
        return "the entry is not a JSON object"
    missing = [key for key in _ENTRY_REQUIRED if key not in entry]
    if missing:
        return f"missing field(s) {', '.join(missing)}"
    unknown = sorted(str(key) for key in entry if key not in _ENTRY_REQUIRED + _ENTRY_OPTIONAL)
    if unknown:
        return f"unknown field(s) {', '.join(unknown)}"
    name = entry["file"]
    if not isinstance(name, str) or not name:
        return "'file' must be a file name"
    if "/" in name or "\\" in name or ".." in name or "\0" in name:
        return f"file name {name[:60]!r} contains a path separator or '..'"
    if name not in (f"{version}.npz", f"{version}.joblib"):
        return f"file name {name[:60]!r} is not {version}.npz"
    if not isinstance(entry["sha256"], str) or not _SHA_RE.match(entry["sha256"]):
        return "'sha256' must be 64 lowercase hex digits"
    size = entry["bytes"]
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return f"'bytes' must be a whole number, got {size!r}"
    if entry["created"] is not None and not isinstance(entry["created"], str):
        return "'created' must be a date text"
    if not isinstance(entry["meta"], dict):
        return "'meta' must be a JSON object"
    if "converted_from" in entry and not isinstance(entry["converted_from"], dict):
        return "'converted_from' must be a JSON object"
    if "artifacts" in entry:
        if not isinstance(entry["artifacts"], dict):
            return "'artifacts' must be a JSON object"
        for name, record in entry["artifacts"].items():
            problem = artifact_problem(version, name, record)
            if problem:
                return problem
    return None


def model_to_bytes(model) -> bytes:
    """The bytes of a model file: a zip of the model's plain arrays, one ``.npy`` member each.

    Written so that a server can load a version fast (a cold page waits for it): a member is
    compressed only when that halves it (the sorted member distances, one float per training
    customer, barely compress and took most of a load to inflate: they are stored as they are);
    training labels are written in the smallest unsigned type that holds k (read back as ``intp``
    by :meth:`SegmentationModel.from_arrays`). Members carry a fixed date, so the same model gives
    the same bytes. ``numpy.load`` reads the file as any ``.npz``; files written by
    ``numpy.savez_compressed`` (earlier releases) load as before.

    Parameters
    ----------
    model : SegmentationModel
        Fitted.

    Returns
    -------
    bytes
    """
    import numpy as np

    arrays = model.to_arrays()
    labels = arrays.get("labels_")
    if labels is not None and labels.size and labels.min() >= 0:
        arrays["labels_"] = labels.astype(np.min_scalar_type(int(labels.max())))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", allowZip64=True) as archive:
        for name, value in arrays.items():
            raw = io.BytesIO()
            np.lib.format.write_array(raw, np.asanyarray(value), allow_pickle=False)
            raw = raw.getvalue()
            member = zipfile.ZipInfo(f"{name}.npy", date_time=_MEMBER_DATE)
            member.compress_type = zipfile.ZIP_DEFLATED
            member.external_attr = 0o600 << 16
            probe = raw[:_PROBE_BYTES]  # how well the start compresses decides (a second full pass costs seconds)
            if len(zlib.compress(probe, 1)) * 2 > len(probe):
                member.compress_type = zipfile.ZIP_STORED
            archive.writestr(member, raw)
    return buffer.getvalue()


def model_from_bytes(data: bytes):
    """Read a model file's bytes as arrays only (``allow_pickle=False``) and rebuild the model.

    Parameters
    ----------
    data : bytes

    Returns
    -------
    SegmentationModel

    Raises
    ------
    ValueError
        Not a zip of arrays, a damaged archive, an object array (which only pickle could
        read), or arrays of the wrong names, shapes or types; the message says which.
    """
    import numpy as np

    from core.fitting.model import SegmentationModel

    try:
        if not data.startswith(b"PK\x03\x04"):
            raise ValueError("not a zip of arrays")
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
        return SegmentationModel.from_arrays(arrays)
    except Exception as exc:  # noqa: BLE001 - parsing only (no pickle): any failure means "not a model file"
        reason = str(exc).split("\n")[0][:160] or type(exc).__name__
        if isinstance(exc, (zipfile.BadZipFile, EOFError)) or type(exc).__name__ == "error":  # zlib.error
            reason = f"damaged archive: {reason}"
        if "allow_pickle" in reason:
            reason = "it holds an object array, which only pickle could read"
        raise ValueError(reason) from None
