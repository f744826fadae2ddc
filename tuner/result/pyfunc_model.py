"""The MLflow pyfunc wrapper of an exported model, written as MLflow "models from code".

``tuner export`` passes this file as ``python_model=`` to MLflow: MLflow copies it into the model
folder and, when the model is loaded, runs it (it ends with ``mlflow.models.set_model``). Nothing
is pickled: the weights are the ``model.npz`` artifact (NumPy arrays read with
``allow_pickle=False``, checked against SHA-256 sums) and the preprocessing is JSON inside it.

This file must stay importable with nothing but MLflow, NumPy, pandas, scikit-learn and the
project's ``model`` package (which the export copies into the model folder's ``code/``): it may
not import ``tuner``.

``predict(df)`` takes a pandas DataFrame of raw rows (the original column names, categorical
values as strings, missing values allowed) and returns labels (classification) or values
(regression). ``params={"predict_proba": True}`` returns a DataFrame of class probabilities
instead, one column per class; a regression model's signature declares no parameters, so MLflow
drops that one (logging a warning) before ``predict`` and values come back.

The signature declares each column ``Any`` (:func:`tuner.result.model_folder._signature`): MLflow
passes the columns on as they are, and the preprocessing here checks them. A missing column or a
value of the wrong type raises an ``MlflowException`` (HTTP 400 when served) that names the column;
an input without rows raises one that says so.
"""

import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.pyfunc import PythonModel

#: The name of the weights artifact in the pyfunc configuration (``context.artifacts``).
ARTIFACT_NAME = "model"
#: The inference parameter that switches to class probabilities.
PROBA_PARAM = "predict_proba"


class TunedMLPModel(PythonModel):
    """A tuned MLP with its fitted preprocessing: raw rows in, labels / values out."""

    def load_context(self, context):
        from model import load

        self.pipeline = load(context.artifacts[ARTIFACT_NAME])
        self.estimator = (
            self.pipeline.steps[-1][1] if hasattr(self.pipeline, "steps") else self.pipeline
        )
        self.is_classifier = hasattr(self.estimator, "classes_")

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None):
        # The pd.DataFrame hint tells MLflow not to derive a schema from type hints: the model's
        # signature (inferred from raw rows at export) is the schema.
        import numpy as np

        if not isinstance(model_input, pd.DataFrame):
            try:
                model_input = pd.DataFrame(model_input)
            except (ValueError, TypeError) as exc:
                raise MlflowException(
                    f"expected a table of rows (a pandas DataFrame): {exc}",
                    error_code=INVALID_PARAMETER_VALUE,
                ) from None
        if len(model_input) == 0:
            raise MlflowException(
                "no rows to predict: the input holds no rows", error_code=INVALID_PARAMETER_VALUE
            )
        want_proba = bool((params or {}).get(PROBA_PARAM, False))
        if want_proba and not self.is_classifier:
            raise MlflowException(
                f"{PROBA_PARAM} is only available for classification models",
                error_code=INVALID_PARAMETER_VALUE,
            )
        try:
            if want_proba:
                proba = np.asarray(self.pipeline.predict_proba(model_input), dtype=np.float64)
                columns = [str(c) for c in self.estimator.classes_]
                return pd.DataFrame(proba, columns=columns, index=model_input.index)
            return np.asarray(self.pipeline.predict(model_input))
        except ValueError as exc:
            # The preprocessor's errors name the column: pass them on as a client error.
            raise MlflowException(
                f"invalid input: {exc}", error_code=INVALID_PARAMETER_VALUE
            ) from None


mlflow.models.set_model(TunedMLPModel())
