"""Saving fitted models without pickle: one ``.npz`` file of plain arrays plus a JSON header.

The header (a 0-d unicode array named ``__meta__``) holds the class, its parameters, the
encoded labels, the preprocessing and a SHA-256 of every array and of the header itself, so a
file corrupted after saving is refused (version 1 files, which checked the arrays only, still
load). The checksums are not keyed: they catch accidents, not a deliberate edit, which can
recompute them. ``np.load(..., allow_pickle=False)`` reads it; nothing in it can execute code.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

FORMAT = "mlp-tuner-model"
VERSION = 2
#: Versions :func:`load` reads: 1 (checksums of the arrays only) and 2 (of the header too).
READABLE_VERSIONS = (1, 2)
#: The key, among the checksums, of the header's own checksum (version 2).
HEADER_DIGEST = "__header__"
MODEL_FILE = "model.npz"


class ModelFileError(ValueError):
    """A file is not a model saved by :func:`save`, or was changed after saving."""


def _digest(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _header_digest(header: dict[str, Any]) -> str:
    """SHA-256 of the header in canonical JSON (sorted keys), its own checksum left out: class
    labels, parameters and preprocessing are covered like the arrays are."""
    body = {k: v for k, v in header.items() if k != "sha256"}
    body["sha256"] = {k: v for k, v in header.get("sha256", {}).items() if k != HEADER_DIGEST}
    return hashlib.sha256(json.dumps(body, sort_keys=True, allow_nan=False).encode()).hexdigest()


def _labels_to_json(classes: np.ndarray) -> dict[str, Any]:
    values = classes.tolist()
    kind = "object" if classes.dtype == object else classes.dtype.str
    if kind == "object" and not all(isinstance(v, (str, int, float, bool)) for v in values):
        raise TypeError("only str, int, float or bool class labels can be saved")
    return {"values": values, "dtype": kind}


def _labels_from_json(data: dict[str, Any]) -> np.ndarray:
    if data["dtype"] == "object":
        out = np.empty(len(data["values"]), dtype=object)
        out[:] = data["values"]
        return out
    return np.asarray(data["values"], dtype=np.dtype(data["dtype"]))


def _estimator_state(est) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    from sklearn.utils.validation import check_is_fitted

    from .estimators import MLPClassifier

    check_is_fitted(est, "_network")
    params = est.get_params()
    params["hidden_layer_sizes"] = list(np.atleast_1d(params["hidden_layer_sizes"]).tolist())
    if not isinstance(params["random_state"], (int, type(None))):
        params["random_state"] = None
    arrays: dict[str, np.ndarray] = {}
    for k, (W, b) in enumerate(zip(est.coefs_, est.intercepts_)):
        arrays[f"coef_{k}"] = W
        arrays[f"intercept_{k}"] = b
    meta: dict[str, Any] = {
        "class": type(est).__name__,
        "params": params,
        "layer_sizes": est._network.layer_sizes,
        "n_features_in": int(est.n_features_in_),
        "loss_curve": [float(v) for v in est.loss_curve_],
        "validation_scores": [float(v) for v in est.validation_scores_],
        "n_iter": int(est.n_iter_),
        "best_epoch": int(est.best_epoch_),
    }
    if hasattr(est, "feature_names_in_"):
        meta["feature_names_in"] = [str(c) for c in est.feature_names_in_]
    if isinstance(est, MLPClassifier):
        meta["classes"] = _labels_to_json(est.classes_)
        meta["multilabel"] = bool(est._multilabel)
    else:
        arrays["y_mean"], arrays["y_scale"] = est._y_mean, est._y_scale
    return meta, arrays


def _restore_estimator(meta: dict[str, Any], arrays: dict[str, np.ndarray]):
    from .estimators import MLPClassifier, MLPRegressor
    from .network import Network
    from .training import TrainingState

    classes = {"MLPClassifier": MLPClassifier, "MLPRegressor": MLPRegressor}
    cls = classes[meta["class"]]
    params = dict(meta["params"])
    params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
    est = cls(**params)
    if cls is MLPClassifier:
        est.classes_ = _labels_from_json(meta["classes"])
        est._multilabel = bool(meta["multilabel"])
    else:
        est._y_mean, est._y_scale = arrays["y_mean"], arrays["y_scale"]
    n_layers = len(meta["layer_sizes"]) - 1
    network = Network(
        meta["layer_sizes"], params["activation"], est._output_loss(),
        dtype=arrays["coef_0"].dtype, dropout=params["dropout"],
    )
    network.set_params(
        [arrays[f"coef_{k}"] for k in range(n_layers)],
        [arrays[f"intercept_{k}"] for k in range(n_layers)],
    )
    est._network = network
    est.n_features_in_ = meta["n_features_in"]
    if "feature_names_in" in meta:
        est.feature_names_in_ = np.asarray(meta["feature_names_in"], dtype=object)
    est.loss_curve_ = meta["loss_curve"]
    est.validation_scores_ = meta["validation_scores"]
    est.n_iter_ = meta["n_iter"]
    est.best_epoch_ = meta["best_epoch"]
    est._rng = est._seed_rng()
    est._init_solver(
        TrainingState(
            epoch=est.n_iter_, loss_curve=list(est.loss_curve_),
            validation_scores=list(est.validation_scores_), best_epoch=est.best_epoch_,
        )
    )
    return est


def _model_state(est) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Header and arrays of one MLP, or of an :class:`~model.ensemble.MLPEnsemble` (each member's
    arrays prefixed ``m<i>_``, their headers listed in order with the weights)."""
    from .ensemble import MLPEnsemble

    if not isinstance(est, MLPEnsemble):
        return _estimator_state(est)
    members, weights = est._members()
    meta: dict[str, Any] = {"class": "MLPEnsemble", "weights": [float(w) for w in weights], "members": []}
    arrays: dict[str, np.ndarray] = {}
    for i, member in enumerate(members):
        member_meta, member_arrays = _estimator_state(member)
        meta["members"].append(member_meta)
        arrays.update({f"m{i}_{name}": a for name, a in member_arrays.items()})
    return meta, arrays


def _restore_model(meta: dict[str, Any], arrays: dict[str, np.ndarray]):
    """The inverse of :func:`_model_state`."""
    if meta["class"] != "MLPEnsemble":
        return _restore_estimator(meta, arrays)
    from .ensemble import MLPEnsemble

    members = []
    for i, member_meta in enumerate(meta["members"]):
        prefix = f"m{i}_"
        member_arrays = {name[len(prefix):]: a for name, a in arrays.items() if name.startswith(prefix)}
        members.append(_restore_estimator(member_meta, member_arrays))
    ensemble = MLPEnsemble(members, list(meta["weights"]))
    ensemble._members()  # the same checks as at saving
    return ensemble


def _split_pipeline(obj):
    """(preprocessor or None, estimator) for an estimator or a two-step Pipeline."""
    from sklearn.pipeline import Pipeline

    if isinstance(obj, Pipeline):
        if len(obj.steps) != 2:
            raise TypeError("only a Pipeline of (TabularPreprocessor, estimator) can be saved")
        (pre_name, pre), (est_name, est) = obj.steps
        return (pre_name, pre), (est_name, est)
    return None, (None, obj)


def save(obj, path: str | Path, metadata: dict[str, Any] | None = None) -> Path:
    """Save a fitted MLPClassifier/MLPRegressor/MLPEnsemble, or a Pipeline of a
    TabularPreprocessor and one of them, to ``path`` (a ``.npz`` file; a directory gets ``model.npz`` inside).

    ``metadata`` (JSON-safe) is stored alongside, e.g. provenance of a tuned model.
    """
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    pre, (est_name, est) = _split_pipeline(obj)
    meta, arrays = _model_state(est)
    header: dict[str, Any] = {"format": FORMAT, "version": VERSION, "estimator": meta}
    if pre is not None:
        header["pipeline"] = {
            "steps": [pre[0], est_name],
            "preprocessor": {"class": type(pre[1]).__name__, "state": pre[1].to_dict()},
        }
    header["metadata"] = metadata or {}
    header["sha256"] = {name: _digest(a) for name, a in arrays.items()}
    header["sha256"][HEADER_DIGEST] = _header_digest(header)
    text = json.dumps(header, allow_nan=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        np.savez(fh, __meta__=np.array(text), **arrays)
    return path


def read_header(path: str | Path) -> dict[str, Any]:
    """The JSON header of a saved model, checked; see :func:`load`."""
    return _read(path)[0]


def _read(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as exc:
        raise ModelFileError(f"{path}: not a readable model file ({exc})") from None
    meta_array = arrays.pop("__meta__", None)
    if meta_array is None or meta_array.dtype.kind != "U" or meta_array.ndim != 0:
        raise ModelFileError(f"{path}: not a model saved by model.save (no header)")
    try:
        header = json.loads(str(meta_array))
    except json.JSONDecodeError as exc:
        raise ModelFileError(f"{path}: corrupted model header ({exc})") from None
    if header.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a model saved by model.save")
    if header.get("version") not in READABLE_VERSIONS:
        raise ModelFileError(f"{path}: unsupported model format version {header.get('version')}")
    expected = dict(header.get("sha256", {}))
    if header["version"] >= 2:
        if expected.pop(HEADER_DIGEST, None) != _header_digest(header):
            raise ModelFileError(f"{path}: the header was changed after saving (checksum mismatch)")
    if set(expected) != set(arrays):
        raise ModelFileError(f"{path}: the arrays in the file do not match its header")
    for name, array in arrays.items():
        if _digest(array) != expected[name]:
            raise ModelFileError(
                f"{path}: array {name!r} was changed after saving (checksum mismatch)"
            )
    return header, arrays


def load(path: str | Path):
    """Load what :func:`save` wrote: an estimator, or a Pipeline when it was saved with its
    preprocessor. Raises :class:`ModelFileError` for a corrupted, altered or foreign file."""
    header, arrays = _read(path)
    try:
        est = _restore_model(header["estimator"], arrays)
        pipeline = header.get("pipeline")
        if pipeline is None:
            return est
        from sklearn.pipeline import Pipeline

        from .preprocessing import TabularPreprocessor

        pre = TabularPreprocessor.from_dict(pipeline["preprocessor"]["state"])
        return Pipeline([(pipeline["steps"][0], pre), (pipeline["steps"][1], est)])
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise ModelFileError(f"{path}: malformed model file ({exc!r})") from None
