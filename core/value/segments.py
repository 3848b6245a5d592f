"""The segments of a log's customers: the active version, when it was trained on the same log."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

__all__ = ["version_of_log", "segment_labels", "run_value", "customers_artifact", "customer_from_artifact"]


def _fingerprint(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def version_of_log(registry, path) -> tuple[str, dict] | None:
    """The active version when it was trained on this transaction log (same path or same bytes).

    Parameters
    ----------
    registry : core.versions.registry.Registry
    path : path-like

    Returns
    -------
    (str, dict) or None
        Version and its metadata.
    """
    version = registry.active_version()
    if version is None:
        return None
    meta = registry.metadata(version)
    if meta.get("input") != "transactions":
        return None
    resolved = str(Path(path).resolve())
    if meta.get("data_path") == resolved or meta.get("data_fingerprint") == _fingerprint(Path(path)):
        return version, meta
    return None


def segment_labels(registry, version: str, path) -> tuple[pd.Series, list[str]]:
    """Each customer's segment under a version trained on a log, and the segment names.

    Parameters
    ----------
    registry : core.versions.registry.Registry
    version : str
    path : path-like
        The log the version was trained on.

    Returns
    -------
    labels : pandas.Series
        Indexed by customer ID.
    names : list of str
    """
    from core.reading.mapping import Mapping, prepare_input

    model, meta = registry.load(version)
    saved = registry.artifact_json(version, "mapping")
    mapping = Mapping.from_dict(saved, where=f"{version} mapping") if saved else None
    features = list(model.features)
    prepared, _ = prepare_input(path, mapping=mapping)
    frame = prepared.frame
    labels = pd.Series(model.predict(frame[features]), index=pd.Index(frame["ID"].to_numpy(), name="ID"))
    names = list(meta.get("segment_names") or [])
    names += [f"Segment {i}" for i in range(len(names), model.k)]
    return labels, names


def run_value(source, *, mapping=None, time_unit: str = "week", calibration_end: str | None = None,
              horizon: int | None = None, discount_rate: float = 0.10, registry=None, draws: int | None = None,
              name: str | None = None, progress=None):
    """Statistics, fits and values of a log, with segments when the active version was trained on it.

    Parameters
    ----------
    source : path-like
    mapping : core.reading.mapping.Mapping, optional
    time_unit, calibration_end, horizon, discount_rate
        As :func:`core.value.value_statistics` and :func:`core.value.compute_value`.
    registry : core.versions.registry.Registry, optional
    draws : int, optional
    name : str, optional
    progress : callable, optional
        Called with each step's name.

    Returns
    -------
    result : core.value.ValueResult
    data : core.value.ValueData
    version : str or None
        The version whose segments were used.
    """
    from core.value.clv import compute_value
    from core.value.statistics import read_purchase_days, value_statistics

    step = progress or (lambda _m: None)
    step("read the log")
    days = read_purchase_days(source, mapping=mapping, name=name)
    step("statistics")
    data = value_statistics(days, time_unit=time_unit, calibration_end=calibration_end)
    labels = names = version = None
    found = version_of_log(registry, source) if registry is not None else None
    if found is not None:
        step(f"segments of version {found[0]}")
        version = found[0]
        labels, names = segment_labels(registry, version, source)
    step("fit")
    extra = {} if draws is None else {"draws": draws}
    result = compute_value(data, horizon=horizon, discount_rate=discount_rate, labels=labels, names=names, **extra)
    if version is not None:
        result.report["version"] = version
    return result, data, version


def customers_artifact(result, data) -> bytes:
    """Per-customer statistics (and segment) as NPZ bytes, sorted by ID, for one-customer look-ups.

    Parameters
    ----------
    result : core.value.ValueResult
    data : core.value.ValueData

    Returns
    -------
    bytes
    """
    import io

    import numpy as np

    c = data.customers
    ids = np.asarray(c.index)
    if ids.dtype.kind == "O":
        ids = ids.astype(str)
    order = np.argsort(ids, kind="stable")
    arrays = {"ID": ids[order]}
    for column in ("frequency", "recency", "T", "repeat_value", "total_value"):
        arrays[column] = c[column].to_numpy(dtype="float64")[order]
    if "segment" in result.customers:
        arrays["segment"] = result.customers["segment"].to_numpy(dtype="int64")[order]
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def customer_from_artifact(blob: bytes, ident: str) -> dict | None:
    """One customer's statistics from :func:`customers_artifact` bytes (None when unknown).

    Parameters
    ----------
    blob : bytes
    ident : str
        The customer ID as typed (whole-number IDs match their number: "00001" is 1).

    Returns
    -------
    dict or None
    """
    import io

    import numpy as np

    with np.load(io.BytesIO(blob), allow_pickle=False) as npz:
        ids = npz["ID"]
        if ids.dtype.kind in "iu":
            try:
                key = int(str(ident).strip())
            except ValueError:
                return None
        else:
            key = str(ident).strip()
        at = int(np.searchsorted(ids, key))
        if at >= len(ids) or ids[at] != key:
            return None
        out = {"ID": ids[at].item()}
        for name in npz.files:
            if name != "ID":
                out[name] = npz[name][at].item()
        return out
