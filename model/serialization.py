"""Saving fitted models without pickle: one ``.npz`` file of plain arrays plus a JSON header.

The header (a 0-d unicode array named ``__meta__``) holds the class, its parameters, the
encoded labels, the preprocessing and a SHA-256 of every array and of the header itself, so a
file corrupted after saving is refused (version 1 files, which checked the arrays only, still
load). The checksums are not keyed: they catch accidents, not a deliberate edit, which can
recompute them. Nothing in the file can execute code: arrays are read without pickle.

A file from elsewhere may be hostile, so reading is bounded by the file's own size before any
array is built: members must be stored uncompressed (no zip bombs), each ``.npy`` header must
declare exactly the bytes its member holds, the JSON header may not nest beyond the parser's
limit, and an estimator's saved layer sizes must be the shapes of its saved weights. Anything
else is a :class:`ModelFileError`.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from pathlib import Path
from typing import IO, Any, BinaryIO, Protocol, TypeVar

import numpy as np

FORMAT = "mlp-tuner-model"
VERSION = 2
#: Versions :func:`load` reads: 1 (checksums of the arrays only) and 2 (of the header too).
READABLE_VERSIONS = (1, 2)
#: The key, among the checksums, of the header's own checksum (version 2).
HEADER_DIGEST = "__header__"
MODEL_FILE = "model.npz"
#: More arrays than any saved model holds (an ensemble of 100 members of 10 layers is 2,000).
MAX_ARRAYS = 10_000


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


#: The classes :func:`load` restores, by the class name saved in the header. Each registers
#: itself with :func:`saveable` and provides ``get_state()`` -> ``(header, arrays)`` and the
#: classmethod ``from_state(header, arrays)``; this module knows the file, they know their state.
class Saveable(Protocol):
    """A model class that :func:`save` writes and :func:`load` restores."""

    def get_state(self) -> tuple[dict[str, Any], dict[str, np.ndarray]]: ...

    @classmethod
    def from_state(cls, meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Saveable: ...


SaveableT = TypeVar("SaveableT", bound=Saveable)

SAVEABLE: dict[str, type[Saveable]] = {}


def saveable(cls: type[SaveableT]) -> type[SaveableT]:
    """Class decorator: :func:`save` writes instances of ``cls`` and :func:`load` restores them."""
    SAVEABLE[cls.__name__] = cls
    return cls


def model_state(est) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Header (with the class name under ``"class"``) and arrays of a fitted saveable model."""
    name = type(est).__name__
    if SAVEABLE.get(name) is not type(est):
        raise TypeError(f"cannot save a {name} (saveable: {', '.join(sorted(SAVEABLE))})")
    meta, arrays = est.get_state()
    return {"class": name, **meta}, arrays


def restore_model(meta: dict[str, Any], arrays: dict[str, np.ndarray]) -> Saveable:
    """The inverse of :func:`model_state`."""
    return SAVEABLE[meta["class"]].from_state(meta, arrays)


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
    TabularPreprocessor and one of them, to ``path``.

    ``path`` is a ``.npz`` file; a directory gets ``model.npz`` inside.

    ``metadata`` (JSON-safe) is stored alongside, e.g. provenance of a tuned model.
    """
    path = Path(path)
    if path.is_dir():
        path = path / MODEL_FILE
    contents = _contents(obj, metadata)  # a model that cannot be saved leaves no file behind
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        # mypy matches **contents against savez's allow_pickle: bool; the keys are array names.
        np.savez(fh, **contents)  # type: ignore[arg-type]
    return path


def write(obj, fh: BinaryIO, metadata: dict[str, Any] | None = None) -> None:
    """Write what :func:`save` writes to the binary file ``fh`` (e.g. an ``io.BytesIO``, to know
    a model's saved size without touching the disk)."""
    # mypy matches **contents against savez's allow_pickle: bool; the keys are array names.
    np.savez(fh, **_contents(obj, metadata))  # type: ignore[arg-type]


def _contents(obj, metadata: dict[str, Any] | None) -> dict[str, np.ndarray]:
    """The arrays of the file: the JSON header (``__meta__``) and the model's own."""
    pre, (est_name, est) = _split_pipeline(obj)
    meta, arrays = model_state(est)
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
    return {"__meta__": np.array(text), **arrays}


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
        arrays = _read_arrays(path)
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as exc:
        raise ModelFileError(f"{path}: not a readable model file ({exc})") from None
    header = _parse_header(path, arrays.pop("__meta__", None))
    _check_digests(path, header, arrays)
    return header, arrays


def _read_arrays(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file, each checked before it is read: a member must be stored
    uncompressed (as :func:`save` writes it, so a small compressed file cannot expand to
    gigabytes) and its ``.npy`` header must declare exactly the bytes the member holds, so no
    array is allocated larger than the file itself."""
    arrays: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as archive:
        members = archive.infolist()
        if len(members) > MAX_ARRAYS:
            raise ValueError(f"{len(members)} arrays, more than a model has ({MAX_ARRAYS})")
        for info in members:
            if info.compress_type != zipfile.ZIP_STORED or info.file_size != info.compress_size:
                raise ValueError(
                    f"array {info.filename!r} is compressed: model.save never writes that"
                )
            with archive.open(info) as fh:
                _check_npy_header(fh, info)
            with archive.open(info) as fh:
                arrays[info.filename.removesuffix(".npy")] = np.lib.format.read_array(
                    fh, allow_pickle=False
                )
    return arrays


def _check_npy_header(fh: IO[bytes], info: zipfile.ZipInfo) -> None:
    """Refuse a member whose declared shape and dtype do not fill exactly its stored bytes."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        shape, _, dtype = np.lib.format.read_array_header_1_0(fh)
    elif version == (2, 0):
        shape, _, dtype = np.lib.format.read_array_header_2_0(fh)
    else:
        raise ValueError(f"array {info.filename!r} has an unsupported .npy version {version}")
    if dtype.hasobject:
        raise ValueError(f"array {info.filename!r} holds Python objects")
    declared = int(np.prod(shape, dtype=object)) * dtype.itemsize
    if fh.tell() + declared != info.file_size:
        raise ValueError(
            f"array {info.filename!r} declares shape {shape} of {dtype}, not what it holds"
        )


def _parse_header(path: Path, meta_array: np.ndarray | None) -> dict[str, Any]:
    """The JSON header, checked for its format and version."""
    if meta_array is None or meta_array.dtype.kind != "U" or meta_array.ndim != 0:
        raise ModelFileError(f"{path}: not a model saved by model.save (no header)")
    try:
        header = json.loads(str(meta_array))
    except (json.JSONDecodeError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ModelFileError(f"{path}: corrupted model header ({reason})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{path}: not a model saved by model.save")
    if header.get("version") not in READABLE_VERSIONS:
        raise ModelFileError(f"{path}: unsupported model format version {header.get('version')}")
    return header


def _check_digests(path: Path, header: dict[str, Any], arrays: dict[str, np.ndarray]) -> None:
    """Every array, and (version 2) the header itself, matches the checksum saved with it."""
    if not isinstance(header.get("sha256", {}), dict):
        raise ModelFileError(f"{path}: malformed model header (no checksums)")
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


def load(path: str | Path):
    """Load what :func:`save` wrote: an estimator, or a Pipeline when it was saved with its
    preprocessor. Raises :class:`ModelFileError` for a corrupted, altered or foreign file."""
    header, arrays = _read(path)
    try:
        est = restore_model(header["estimator"], arrays)
        pipeline = header.get("pipeline")
        if pipeline is None:
            return est
        from sklearn.pipeline import Pipeline

        from .preprocessing import TabularPreprocessor

        pre = TabularPreprocessor.from_dict(pipeline["preprocessor"]["state"])
        return Pipeline([(pipeline["steps"][0], pre), (pipeline["steps"][1], est)])
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, RecursionError) as exc:
        raise ModelFileError(f"{path}: malformed model file ({exc!r})") from None
