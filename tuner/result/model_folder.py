"""The exported model's folder: an MLflow pyfunc model (models from code), without pickle.

What :func:`write_model_folder` writes to ``DIR`` (default ``exports/<study>``)::

    DIR/
      MLmodel                  flavour python_function (models from code), signature with a
                               params schema, ``metadata`` = provenance
                               (:func:`tuner.result.metadata.provenance`)
      model.npz                the weights + JSON architecture/preprocessing (``model.save``),
                               read with ``allow_pickle=False``; also what ``model.load(DIR)`` reads
      pyfunc_model.py          the pyfunc wrapper (:mod:`tuner.result.pyfunc_model`,
                               ``set_model`` inside)
      code/model/              the project's ``model`` package (NumPy MLP + preprocessing)
      input_example.json, serving_input_example.json
      requirements.txt, python_env.yaml, conda.yaml

MLflow keeps pyfunc artifacts under ``artifacts/`` by default; the export moves ``model.npz`` to
the top of the folder and points the pyfunc configuration at it, so there is one weights file,
loaded by both ``mlflow.pyfunc.load_model(DIR)`` and ``model.load(DIR)``.

No file in ``DIR`` is a pickle: MLflow writes ``python_model.pkl`` only for a ``PythonModel``
object, and the export passes a file instead (:func:`check_no_pickle` verifies the folder).

Export (:mod:`tuner.result.export`) writes a new folder beside the old one and swaps it in
(:func:`prepare_out` checks first that it may replace what is there, :func:`swap_in` replaces it).
"""

from __future__ import annotations

import shutil
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

from tuner.errors import TunerError

PYFUNC_FILE = Path(__file__).with_name("pyfunc_model.py")
WEIGHTS_FILE = "model.npz"
ARTIFACT_NAME = "model"  # the key in pyfunc_model.ARTIFACT_NAME (that file may not import tuner)
PROBA_PARAM = "predict_proba"  # pyfunc_model.PROBA_PARAM
#: Start bytes of pickle protocols 2-5 (a pickle stream begins with PROTO <n>).
PICKLE_HEADERS = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def package_versions() -> dict[str, str]:
    from importlib import metadata

    versions = {}
    for name in ("mlp-tuner", "numpy", "pandas", "scikit-learn", "mlflow", "optuna"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    import platform

    versions["python"] = platform.python_version()
    return versions


def _signature(splits, pipeline):
    """The model's signature: every input column declared ``Any`` and optional, the outputs and the
    ``predict_proba`` parameter as inferred.

    MLflow's schema enforcement accepts no single column type for what ``pd.read_csv`` gives for
    one column of new rows: integers (int64) where the training rows held floats, or the reverse
    with a gap (float64 with NaN); digits (int64) in a text column; an all-empty text column
    (float64). A ``double`` column refuses int64 ("Can not safely convert int64 to float64"), a
    ``long`` one refuses float64, a ``string`` one refuses both. ``Any`` passes each column on
    as it is, and the model's own preprocessing checks it: a column that should be numeric but
    holds text, or a missing column, is refused in one line that names the column (MLflow does
    not check optional columns, so a missing one reaches the model as well). The column names
    stay in the signature, and the input example shows their types.
    """
    from mlflow.models import ModelSignature, infer_signature
    from mlflow.types.schema import AnyType, ColSpec, Schema

    rows = splits.X_train
    params = {PROBA_PARAM: False} if splits.task == "classification" else None
    inferred = infer_signature(rows.head(20), pipeline.predict(rows.head(20)), params=params)
    inputs = Schema([ColSpec(AnyType(), str(name), required=False) for name in rows.columns])
    return ModelSignature(inputs=inputs, outputs=inferred.outputs, params=inferred.params)


def _input_example(splits, n: int = 5):
    """A few raw training rows, with a missing value among them when the data has any."""
    rows = splits.X_train
    with_missing = rows[rows.isna().any(axis=1)]
    example = rows.head(n)
    if len(with_missing) and not example.isna().any(axis=None):
        example = rows.loc[[*rows.index[: n - 1], with_missing.index[0]]]
    return example


def _without_nan(value):
    """``value`` (parsed JSON) with every NaN float as None (JSON ``null``)."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, list):
        return [_without_nan(v) for v in value]
    if isinstance(value, dict):
        return {k: _without_nan(v) for k, v in value.items()}
    return value


def strict_json_examples(path: Path) -> None:
    """Rewrite the folder's example files as strict JSON: MLflow writes a missing value as
    ``NaN``, which is not JSON (``curl -d @serving_input_example.json`` works, but a strict
    parser, ``jq`` or another language refuses it); ``null`` is read back as a missing value."""
    import json

    for name in ("input_example.json", "serving_input_example.json"):
        file = path / name
        if file.is_file():
            parsed = json.loads(file.read_text())
            indent = 2 if name.startswith("serving") else None
            file.write_text(json.dumps(_without_nan(parsed), indent=indent, allow_nan=False))


def _requirements() -> list[str]:
    versions = package_versions()
    return [
        f"{name}=={versions[name]}"
        for name in ("mlflow", "numpy", "pandas", "scikit-learn")
        if name in versions
    ]


def write_model_folder(path: Path, pipeline, splits, metadata: dict[str, Any]) -> Path:
    """Write the MLflow model folder at ``path`` (which must not exist or be empty)."""
    import mlflow
    from mlflow.models import Model

    import model as model_package
    from model import save

    with tempfile.TemporaryDirectory(prefix="tuner-export-") as tmp:
        weights = save(pipeline, Path(tmp) / WEIGHTS_FILE, metadata=metadata)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlflow.pyfunc.save_model(
                path=str(path),
                python_model=str(PYFUNC_FILE),
                artifacts={ARTIFACT_NAME: str(weights)},
                code_paths=[str(Path(model_package.__file__).parent)],
                signature=_signature(splits, pipeline),
                input_example=_input_example(splits),
                pip_requirements=_requirements(),
                metadata=metadata,
            )
    # One weights file, at the top: model.load(DIR) and the pyfunc read the same bytes.
    mlmodel = Model.load(str(path))
    conf = mlmodel.flavors["python_function"]["artifacts"][ARTIFACT_NAME]
    (path / conf["path"]).replace(path / WEIGHTS_FILE)
    shutil.rmtree(path / "artifacts", ignore_errors=True)
    mlmodel.flavors["python_function"]["artifacts"][ARTIFACT_NAME] = {
        "path": WEIGHTS_FILE,
        "uri": WEIGHTS_FILE,
    }
    mlmodel.save(str(path / "MLmodel"))
    strict_json_examples(path)
    for pycache in path.rglob("__pycache__"):
        shutil.rmtree(pycache, ignore_errors=True)
    return path


def check_no_pickle(path: Path) -> list[str]:
    """Problems that would make loading the folder unpickle something (empty list: none).

    Every file is checked: no ``.pkl``/``.pickle`` file, no file that starts like a pickle
    stream, no zip member (``.npz``) that is a pickle or an object array.
    """
    import numpy as np

    problems = []
    for file in sorted(p for p in Path(path).rglob("*") if p.is_file()):
        rel = file.relative_to(path)
        if file.suffix in (".pkl", ".pickle", ".joblib", ".cloudpickle"):
            problems.append(f"{rel}: pickle file")
            continue
        data = file.read_bytes()
        if data.startswith(PICKLE_HEADERS):
            problems.append(f"{rel}: starts with a pickle header")
        if zipfile.is_zipfile(file):
            with zipfile.ZipFile(file) as zf:
                for name in zf.namelist():
                    member = zf.read(name)
                    if member.startswith(PICKLE_HEADERS):
                        problems.append(f"{rel}:{name}: pickle")
                    elif name.endswith(".npy"):
                        import io

                        fmt = np.lib.format
                        with io.BytesIO(member) as fh:
                            version = fmt.read_magic(fh)
                            read = (
                                fmt.read_array_header_1_0
                                if version == (1, 0)
                                else fmt.read_array_header_2_0
                            )
                            dtype = read(fh, max_header_size=1 << 20)[2]
                        if dtype.hasobject:
                            problems.append(f"{rel}:{name}: object array (needs pickle)")
    return problems


def model_name(study: str, source: str, trial: int | None) -> str:
    """The name of an exported model in MLflow: ``<study>-final`` for the study's final model
    (however many trials it averages), ``<study>-trial-N`` for the model trial N trained (or
    trained again alike), ``<study>-trial-N-refit`` for trial N refit on training + validation
    rows."""
    if source == "final":
        return f"{study}-final"
    return f"{study}-trial-{trial}" + ("-refit" if source == "refit" else "")


def describe_export(study: str, source: str, trial: int | None) -> str:
    """What an export holds, in words: the identity compared before a folder is replaced."""
    if source == "final":
        return f"the final model of study {study!r}"
    kind = "refit on training + validation rows" if source == "refit" else "as trained in its trial"
    return f"trial {trial} of study {study!r}, {kind}"


def prepare_out(out: Path, what: str, force: bool) -> None:
    """Check that ``out`` may receive an export described by ``what``: absent, empty, or a previous
    export of the same thing (replaced once the new one is written); another model is replaced
    only with ``force``."""
    if not (out.exists() and (not out.is_dir() or any(out.iterdir()))):
        return
    if not (out.is_dir() and (out / "MLmodel").is_file()):
        raise TunerError(f"{out} exists and is not an exported model folder; choose another --out")
    try:
        from mlflow.models import Model

        old = Model.load(str(out)).metadata or {}
        held = describe_export(old["study"], old["source"], old.get("trial"))
    except Exception:  # an unreadable previous export: treated as another model
        held = "a model this version cannot read"
    if held != what and not force:
        raise TunerError(
            f"{out} holds {held}, not {what}; pass --force to replace it, or choose another --out"
        )


def swap_in(new: Path, out: Path) -> None:
    """Replace ``out`` (absent or a previous export) by the folder ``new``."""
    if out.exists():
        old = out.with_name(f".{out.name}.old")
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
        new.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        new.rename(out)
