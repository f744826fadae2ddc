"""The multilayer perceptron classifier: binary, multiclass and multi-label targets."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import column_or_1d

from .estimators import BaseMLP
from .losses import BinaryCrossEntropy, CategoricalCrossEntropy, OutputLoss
from .parameters import with_parameters_doc
from .serialization import saveable


@saveable
@with_parameters_doc
class MLPClassifier(ClassifierMixin, BaseMLP):
    """Multilayer perceptron classifier: binary (one sigmoid), multiclass (softmax) and
    multi-label (one sigmoid per label, y as an indicator matrix)."""

    _monitors = {"score": ("val_accuracy", True), "loss": ("val_loss", False)}

    def partial_fit(self, X, y, classes=None):
        """One epoch over (X, y); ``classes`` lists every label on the first call.

        The labels' type is checked once, on ``classes`` (or on a first indicator matrix); each
        call then checks only that its labels are among ``classes_``, which costs far less than
        scikit-learn's label checks on every call (see :meth:`_class_index`).
        """
        if not hasattr(self, "_network"):
            if classes is not None:
                check_classification_targets(np.asarray(classes))
            elif type_of_target(y) != "multilabel-indicator":
                raise ValueError("classes must be passed on the first call to partial_fit")
        return self._fit(X, y, None, None, (), incremental=True, classes=classes)

    def _prepare_y(self, y: np.ndarray) -> np.ndarray:
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        return y

    def _set_classes(self, classes) -> None:
        self.classes_ = np.unique(np.asarray(classes))
        self._multilabel = False
        if len(self.classes_) < 2:
            raise ValueError(
                f"the classifier needs at least 2 classes; got 1 class: {self.classes_[0]!r}"
            )

    def _encode_targets(self, y: np.ndarray, fitting: bool) -> np.ndarray:
        if fitting or self._multilabel:
            check_classification_targets(y)
        if fitting:
            if type_of_target(y) == "multilabel-indicator":
                self._multilabel = True
                self.classes_ = np.arange(y.shape[1])
            else:
                self._set_classes(y)
        if self._multilabel:
            return np.asarray(y, dtype=np.float64)
        index = self._class_index(y)
        if len(self.classes_) == 2:
            return (index == 1).astype(np.float64)[:, None]
        # One-hot rows copied with take: the same rows as fancy indexing, several times faster.
        return np.eye(len(self.classes_)).take(index, axis=0)

    def _class_index(self, y: np.ndarray) -> np.ndarray:
        """Each label's position in ``classes_``; ValueError naming the labels not in it.

        Labels that are all found in ``classes_`` (one sorted search and one comparison) are
        valid: ``classes_`` holds labels that passed scikit-learn's checks when they were set.
        Anything else (a label not found, labels not comparable with the classes, more than one
        column) goes through those checks, which refuse it with their own message, or through
        the message naming the labels not in ``classes_``.
        """
        classes = self.classes_
        if y.ndim == 1:
            try:
                index = np.searchsorted(classes, y)
                found = classes[np.minimum(index, len(classes) - 1)] == y
            except TypeError:  # labels of a type that does not compare with the classes
                found = None
            if isinstance(found, np.ndarray) and found.all():
                return index
        check_classification_targets(y)
        unknown = np.setdiff1d(np.unique(y), classes)
        if unknown.size:
            raise ValueError(f"y contains labels not seen in classes: {unknown.tolist()}")
        return np.searchsorted(classes, y)

    def _training_targets(self, Y: np.ndarray) -> np.ndarray:
        """Label smoothing: each target row moves a share ``label_smoothing`` of its mass to the
        uniform distribution over the classes, (1 - eps) y + eps / K, where a sigmoid output is a
        choice of K = 2 (its target y becomes (1 - eps) y + eps / 2)."""
        eps = float(self.label_smoothing)
        if not eps:
            return Y
        k = 2 if self._multilabel or Y.shape[1] == 1 else Y.shape[1]
        return (1.0 - eps) * Y + eps / k

    def _output_loss(self) -> OutputLoss:
        if self._multilabel or len(self.classes_) == 2:
            return BinaryCrossEntropy()
        return CategoricalCrossEntropy()

    def _stratify_labels(self, y):
        return None if self._multilabel else y

    def _target_state(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        meta["classes"] = _labels_to_json(self.classes_)
        meta["multilabel"] = bool(self._multilabel)

    def _restore_targets(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        self.classes_ = _labels_from_json(meta["classes"])
        self._multilabel = bool(meta["multilabel"])

    def _validation_evaluator(
        self, X_val: np.ndarray, y_val: np.ndarray
    ) -> Callable[[], dict[str, float]]:
        network = self._network
        Y = self._encode_targets(y_val, fitting=False).astype(network.dtype)
        if self._multilabel:
            truth = Y > 0.5
        elif Y.shape[1] == 1:
            truth = Y[:, 0] > 0.5
        else:
            truth = Y.argmax(axis=1)

        def evaluate() -> dict[str, float]:
            z = network.forward(X_val)
            loss = network.output.loss(z, Y)  # from the logits: no clipped log of 0
            # The predicted class from the logits: argmax, or a sigmoid above 1/2 when z > 0.
            if self._multilabel:
                correct = np.all((z > 0) == truth, axis=1)
            elif Y.shape[1] == 1:
                correct = (z[:, 0] > 0) == truth
            else:
                correct = z.argmax(axis=1) == truth
            return {"val_loss": float(loss), "val_accuracy": float(np.mean(correct))}

        return evaluate

    def _proba(self, output: np.ndarray) -> np.ndarray:
        if not self._multilabel and output.shape[1] == 1:
            return np.hstack([1.0 - output, output])
        return output

    def predict_proba(self, X) -> np.ndarray:
        """Class probabilities, columns in the order of ``classes_``."""
        return self._proba(self._forward(X))

    def predict_log_proba(self, X) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.log(self.predict_proba(X))

    def predict(self, X) -> np.ndarray:
        proba = self.predict_proba(X)
        if self._multilabel:
            return (proba > 0.5).astype(int)
        return self.classes_[np.argmax(proba, axis=1)]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        return tags


def _labels_to_json(classes: np.ndarray) -> dict:
    values = classes.tolist()
    kind = "object" if classes.dtype == object else classes.dtype.str
    # Any other dtype (datetime64 lists dates) is refused.
    if not all(isinstance(v, (str, int, float, bool)) for v in values):
        raise TypeError("only str, int, float or bool class labels can be saved")
    return {"values": values, "dtype": kind}


def _labels_from_json(data: dict) -> np.ndarray:
    if data["dtype"] == "object":
        out = np.empty(len(data["values"]), dtype=object)
        out[:] = data["values"]
        return out
    return np.asarray(data["values"], dtype=np.dtype(data["dtype"]))
