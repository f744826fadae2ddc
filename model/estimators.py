"""scikit-learn estimators over the NumPy network: MLPClassifier and MLPRegressor."""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import mean_absolute_error, mean_squared_error, r2_score
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from .activations import get_activation
from .losses import BinaryCrossEntropy, CategoricalCrossEntropy, OutputLoss, SquaredError
from .network import Network
from .optimizers import OPTIMIZERS, AdamW, check_optimizer_name
from .parameters import check_numeric_parameters
from .schedules import make_schedule
from .serialization import save as save_model
from .serialization import saveable
from .training import EpochCallback, StoppingRules, TrainingState, train

DTYPES = {"float32": np.float32, "float64": np.float64}


PARAMETERS_DOC = """
    Parameters
    ----------
    hidden_layer_sizes : sequence of int or int, default=(64,)
        Units of each hidden layer, input side first; an int is one layer.
    activation : {"relu", "tanh", "sigmoid", "leaky_relu", "elu"}, default="relu"
        Activation of the hidden layers.
    optimizer : {"sgd", "momentum", "nesterov", "rmsprop", "adam", "adamw"}, default="adam"
        Update rule. ``"adamw"`` applies ``l2`` as decoupled weight decay instead of a loss term.
    learning_rate : float > 0, default=1e-3
        Initial step size; ``lr_schedule`` changes it from epoch to epoch.
    lr_schedule : {"constant", "step", "exponential", "inverse_time", "cosine", "plateau"}, \
default="constant"
        How the learning rate decays over ``max_epochs`` (``"plateau"`` follows the training loss).
    batch_size : int >= 1, default=32
        Rows per gradient step; the last batch of an epoch may be smaller.
    max_epochs : int >= 1, default=200
        Passes over the training data at most.
    tol : float >= 0, default=1e-4
        Smallest improvement of the training loss (or, with early stopping, of the validation
        metric) that counts as progress.
    n_iter_no_change : int >= 1, default=10
        Epochs without progress of the training loss after which training stops (converged).
    l2 : float >= 0, default=1e-4
        L2 penalty λ: the loss gains (λ / 2m) Σ‖W‖² over the weights (not the biases).
    dropout : float in [0, 1), default=0.0
        Probability of dropping each hidden unit during training (inverted dropout).
    early_stopping : bool, default=False
        Stop when the validation metric stops improving for ``patience`` epochs and restore the
        best epoch's weights. Validation rows are ``X_val``/``y_val`` of :meth:`fit`, else a
        ``validation_fraction`` of the training rows.
    validation_fraction : float in (0, 1), default=0.1
        Share of the training rows held out for early stopping when no ``X_val`` is given.
    patience : int >= 1, default=10
        Epochs without improvement of the validation metric before early stopping.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, shuffling, dropout and the validation split.
    dtype : {"float32", "float64"}, default="float32"
        Precision of training; prediction is computed in float64 so that a row's output does
        not depend on the batch it is predicted in.
    early_stopping_metric : {"score", "loss"}, default="score"
        What early stopping watches: ``"score"`` is what :meth:`score` computes (accuracy, R²),
        ``"loss"`` the validation loss (cross-entropy; RMSE for regressors), smoother and what a
        probability metric rewards.
"""


def _with_parameters(cls: type) -> type:
    """Append the shared numpydoc ``Parameters`` section to an estimator's docstring."""
    cls.__doc__ = (cls.__doc__ or "").rstrip() + "\n" + PARAMETERS_DOC
    return cls



class BaseMLP(BaseEstimator):
    """Shared fitting logic; subclasses define how targets become network outputs."""

    def __init__(
        self,
        hidden_layer_sizes: Sequence[int] = (64,),
        activation: str = "relu",
        optimizer: str = "adam",
        learning_rate: float = 1e-3,
        lr_schedule: str = "constant",
        batch_size: int = 32,
        max_epochs: int = 200,
        tol: float = 1e-4,
        n_iter_no_change: int = 10,
        l2: float = 1e-4,
        dropout: float = 0.0,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        patience: int = 10,
        random_state: int | np.random.RandomState | None = None,
        dtype: str = "float32",
        early_stopping_metric: str = "score",
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.lr_schedule = lr_schedule
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.tol = tol
        self.n_iter_no_change = n_iter_no_change
        self.l2 = l2
        self.dropout = dropout
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.random_state = random_state
        self.dtype = dtype
        self.early_stopping_metric = early_stopping_metric

    # --- subclass hooks -------------------------------------------------------------------
    def _encode_targets(self, y: np.ndarray, fitting: bool) -> np.ndarray:
        raise NotImplementedError

    def _output_loss(self) -> OutputLoss:
        raise NotImplementedError

    def _validation_evaluator(self, X_val: np.ndarray, y_val: np.ndarray) -> Callable[[], dict[str, float]]:
        """The per-epoch validation metrics as a function of the current weights.

        The targets are encoded once per fit, and each epoch runs the network's own forward
        pass in its training dtype, reusing its buffers: this runs every epoch of every trial.
        """
        raise NotImplementedError

    #: Early stopping's validation metric by ``early_stopping_metric``: (logged name, higher is
    #: better). "score" is what ``score()`` computes (accuracy, R²); "loss" the validation loss
    #: (cross-entropy, or RMSE for regressors), smoother and what a probability metric rewards.
    _monitors: dict[str, tuple[str, bool]] = {}

    # --- fitted attributes -----------------------------------------------------------------
    @property
    def coefs_(self) -> list[np.ndarray]:
        """Weight matrices W_l of shape (n_in, n_out), live views of the trained parameters."""
        return self._network.coefs

    @property
    def intercepts_(self) -> list[np.ndarray]:
        """Bias vectors b_l of shape (n_out,)."""
        return self._network.intercepts

    @property
    def n_params_(self) -> int:
        return self._network.n_params

    # --- validation ------------------------------------------------------------------------
    def _check_hyperparameters(self) -> np.dtype:
        sizes = self.hidden_layer_sizes
        if isinstance(sizes, numbers.Integral):
            sizes = (sizes,)
        sizes = list(sizes)
        if not all(isinstance(s, numbers.Integral) and s > 0 for s in sizes):
            raise ValueError(
                f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}"
            )
        get_activation(self.activation)
        check_optimizer_name(self.optimizer)
        make_schedule(self.lr_schedule, 1.0, 1)
        check_numeric_parameters(self.get_params())
        if self.early_stopping_metric not in self._monitors:
            raise ValueError(
                f"early_stopping_metric must be one of {sorted(self._monitors)}, got {self.early_stopping_metric!r}"
            )
        if str(self.dtype) not in DTYPES:
            raise ValueError(f"dtype must be one of {sorted(DTYPES)}, got {self.dtype!r}")
        self._layer_sizes = sizes
        return np.dtype(DTYPES[str(self.dtype)])

    def _seed_rng(self) -> np.random.Generator:
        if isinstance(self.random_state, numbers.Integral):
            return np.random.default_rng(int(self.random_state))
        seed = check_random_state(self.random_state).randint(np.iinfo(np.int32).max)
        return np.random.default_rng(seed)

    # --- fitting ---------------------------------------------------------------------------
    def fit(
        self,
        X,
        y,
        X_val=None,
        y_val=None,
        callbacks: Sequence[EpochCallback] | None = None,
    ):
        """Train from scratch for up to ``max_epochs`` epochs.

        Validation data (``X_val``, ``y_val``), when given, is scored after every epoch and passed
        to ``callbacks``; with ``early_stopping`` it decides when to stop (otherwise a
        ``validation_fraction`` of the training data is held out for it).
        """
        return self._fit(X, y, X_val, y_val, callbacks or (), incremental=False)

    def _fit(self, X, y, X_val, y_val, callbacks, incremental: bool, classes=None):
        dtype = self._check_hyperparameters()
        first = not (incremental and hasattr(self, "_network"))
        X, y = validate_data(
            self, X, y, reset=first, dtype=(np.float64, np.float32), multi_output=True
        )
        if X.shape[0] == 0:
            raise ValueError("cannot fit on empty data: X has 0 samples")
        y = self._prepare_y(y)
        if first:
            self._rng = self._seed_rng()
        if first and classes is not None:
            self._set_classes(classes)
        Y = self._encode_targets(y, fitting=first and classes is None)
        if X_val is not None:
            if y_val is None:
                raise ValueError("X_val was given without y_val")
            X_val = validate_data(self, X_val, reset=False, dtype=(np.float64, np.float32))
            y_val = self._prepare_y(np.asarray(y_val))
        elif self.early_stopping and not incremental:
            X, X_val, Y, y_val = self._split_validation(X, y, Y)
        X = np.ascontiguousarray(X, dtype=dtype)
        Y = np.ascontiguousarray(Y, dtype=dtype)
        if first:
            self._network = Network(
                [X.shape[1], *self._layer_sizes, Y.shape[1]],
                self.activation,
                self._output_loss(),
                dtype=dtype,
                dropout=self.dropout,
            )
            self._network.initialize(self._rng)
            self._init_solver(TrainingState())
        elif self._network.layer_sizes[-1] != Y.shape[1]:
            raise ValueError(
                f"y has {Y.shape[1]} outputs but the model was fitted with "
                f"{self._network.layer_sizes[-1]}"
            )
        state = self._state
        if not incremental:
            state.epochs_without_improvement = 0
        evaluate = None
        if X_val is not None:
            evaluate = self._validation_evaluator(np.ascontiguousarray(X_val, dtype=dtype), y_val)

        train(
            self._network,
            self._optimizer,
            self._schedule,
            X,
            Y,
            batch_size=self.batch_size,
            l2=self.l2,
            rules=StoppingRules(
                max_epochs=1 if incremental else self.max_epochs,
                tol=self.tol,
                n_iter_no_change=self.n_iter_no_change,
                early_stopping=bool(self.early_stopping) and X_val is not None,
                patience=self.patience,
                higher_is_better=self._monitors[self.early_stopping_metric][1],
            ),
            rng=self._rng,
            state=state,
            evaluate=evaluate,
            monitor=self._monitors[self.early_stopping_metric][0],
            callbacks=callbacks,
        )
        self.loss_curve_ = list(state.loss_curve)
        self.validation_scores_ = list(state.validation_scores)
        self.n_iter_ = state.epoch
        self.t_ = state.steps
        self.best_loss_ = state.best_loss
        self.best_epoch_ = state.best_epoch
        self.stop_reason_ = state.stop_reason
        if not incremental and state.stop_reason == "max_epochs":
            warnings.warn(
                f"{type(self).__name__}: reached max_epochs={self.max_epochs} before the "
                "loss converged",
                ConvergenceWarning,
                stacklevel=3,
            )
        return self

    def _init_solver(self, state: TrainingState) -> None:
        """Fresh optimizer and schedule for the current network, continuing from ``state``."""
        self._optimizer = self._make_optimizer()
        self._schedule = make_schedule(
            self.lr_schedule,
            self.learning_rate,
            self.max_epochs,
            patience=max(1, self.n_iter_no_change // 2),
            tol=self.tol,
        )
        self._state = state

    def _prepare_y(self, y: np.ndarray) -> np.ndarray:
        return y

    def _make_optimizer(self):
        params = self._network.params
        if self.optimizer == "adamw":
            mask = np.zeros_like(params)
            mask[: self._network.n_weights] = 1.0
            return AdamW(params, weight_decay=self.l2, decay_mask=mask)
        return OPTIMIZERS[self.optimizer](params)

    def _split_validation(self, X, y, Y):
        stratify = self._stratify_labels(y)
        seed = int(self._rng.integers(np.iinfo(np.int32).max))
        n_val = max(1, int(round(self.validation_fraction * X.shape[0])))
        if X.shape[0] - n_val < 1:
            raise ValueError(
                f"early_stopping needs at least 2 samples; got {X.shape[0]} "
                f"with validation_fraction={self.validation_fraction}"
            )
        try:
            X_tr, X_val, Y_tr, _, _, y_val = train_test_split(
                X, Y, y, test_size=n_val, random_state=seed, stratify=stratify
            )
        except ValueError:
            X_tr, X_val, Y_tr, _, _, y_val = train_test_split(
                X, Y, y, test_size=n_val, random_state=seed
            )
        return X_tr, X_val, Y_tr, y_val

    def _stratify_labels(self, y):
        return None

    # --- prediction ------------------------------------------------------------------------
    def _forward(self, X) -> np.ndarray:
        check_is_fitted(self, "_network")
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        return self._network.predict_output(X)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags

    def save(self, path) -> None:
        """Write the fitted estimator to ``path`` (NumPy arrays + JSON, no pickle)."""
        save_model(self, path)

    # --- state (what model.save writes and model.load reads back) ---------------------------
    def get_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """``(header, arrays)`` of the fitted estimator: JSON-safe parameters and training record,
        and the weights, from which :meth:`from_state` rebuilds it bit for bit."""
        check_is_fitted(self, "_network")
        params = self.get_params()
        params["hidden_layer_sizes"] = list(np.atleast_1d(params["hidden_layer_sizes"]).tolist())
        if not isinstance(params["random_state"], (int, type(None))):
            params["random_state"] = None
        arrays: dict[str, np.ndarray] = {}
        for k, (W, b) in enumerate(zip(self.coefs_, self.intercepts_)):
            arrays[f"coef_{k}"] = W
            arrays[f"intercept_{k}"] = b
        meta: dict = {
            "params": params,
            "layer_sizes": self._network.layer_sizes,
            "n_features_in": int(self.n_features_in_),
            "loss_curve": [float(v) for v in self.loss_curve_],
            "validation_scores": [float(v) for v in self.validation_scores_],
            "n_iter": int(self.n_iter_),
            "best_epoch": int(self.best_epoch_),
        }
        if hasattr(self, "feature_names_in_"):
            meta["feature_names_in"] = [str(c) for c in self.feature_names_in_]
        self._target_state(meta, arrays)
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> BaseMLP:
        """The fitted estimator that :meth:`get_state` described, ready to predict or train on."""
        params = dict(meta["params"])
        params["hidden_layer_sizes"] = tuple(params["hidden_layer_sizes"])
        est = cls(**params)
        est._restore_targets(meta, arrays)
        _check_layer_arrays(meta["layer_sizes"], arrays)
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

    def _target_state(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        """Add what maps network outputs to targets (classes, target scaling) to the state."""
        raise NotImplementedError

    def _restore_targets(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError


def _check_layer_arrays(layer_sizes: list, arrays: dict[str, np.ndarray]) -> None:
    """Refuse saved layer sizes that the saved weights do not have, before a network of those
    sizes is allocated: the arrays, whose size the file bounds, decide what is built."""
    sizes = [int(s) for s in layer_sizes]
    n_layers = len(sizes) - 1
    for k in range(max(n_layers, 0)):
        W, b = arrays.get(f"coef_{k}"), arrays.get(f"intercept_{k}")
        if W is None or b is None or W.shape != (sizes[k], sizes[k + 1]) or b.shape != (sizes[k + 1],):
            raise ValueError(f"layer {k}: the saved weights do not have the saved layer sizes {sizes}")
    if n_layers < 1 or f"coef_{n_layers}" in arrays:
        raise ValueError(f"the saved layer sizes {sizes} do not match the saved weights")


@saveable
@_with_parameters
class MLPClassifier(ClassifierMixin, BaseMLP):
    """Multilayer perceptron classifier: binary (one sigmoid), multiclass (softmax) and
    multi-label (one sigmoid per label, y as an indicator matrix)."""

    _monitors = {"score": ("val_accuracy", True), "loss": ("val_loss", False)}

    def partial_fit(self, X, y, classes=None):
        """One epoch over (X, y); ``classes`` lists every label on the first call."""
        if not hasattr(self, "_network") and classes is None:
            if type_of_target(y) != "multilabel-indicator":
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
        check_classification_targets(y)
        if fitting:
            if type_of_target(y) == "multilabel-indicator":
                self._multilabel = True
                self.classes_ = np.arange(y.shape[1])
            else:
                self._set_classes(y)
        if self._multilabel:
            return np.asarray(y, dtype=np.float64)
        unknown = np.setdiff1d(np.unique(y), self.classes_)
        if unknown.size:
            raise ValueError(f"y contains labels not seen in classes: {unknown.tolist()}")
        index = np.searchsorted(self.classes_, y)
        if len(self.classes_) == 2:
            return (index == 1).astype(np.float64)[:, None]
        return np.eye(len(self.classes_))[index]

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

    def _validation_evaluator(self, X_val: np.ndarray, y_val: np.ndarray) -> Callable[[], dict[str, float]]:
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


@saveable
@_with_parameters
class MLPRegressor(RegressorMixin, BaseMLP):
    """Multilayer perceptron regressor (identity output, squared error), single or multi-output.

    Targets are standardised internally, so raw targets in the hundreds train as well as
    unit-scale ones; predictions are returned in the original units.
    """

    _monitors = {"score": ("val_r2", True), "loss": ("val_rmse", False)}

    def partial_fit(self, X, y):
        """One epoch over (X, y)."""
        return self._fit(X, y, None, None, (), incremental=True)

    def _encode_targets(self, y: np.ndarray, fitting: bool) -> np.ndarray:
        y = np.asarray(y, dtype=np.float64)
        if not np.all(np.isfinite(y)):
            raise ValueError("Input y contains NaN or infinity.")
        Y = y[:, None] if y.ndim == 1 else y
        if fitting:
            self._y_mean = Y.mean(axis=0)
            scale = Y.std(axis=0)
            self._y_scale = np.where(scale > 0, scale, 1.0)
        return (Y - self._y_mean) / self._y_scale

    def _output_loss(self) -> OutputLoss:
        return SquaredError()

    def _target_state(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        arrays["y_mean"], arrays["y_scale"] = self._y_mean, self._y_scale

    def _restore_targets(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        self._y_mean, self._y_scale = arrays["y_mean"], arrays["y_scale"]

    def _validation_evaluator(self, X_val: np.ndarray, y_val: np.ndarray) -> Callable[[], dict[str, float]]:
        y = np.asarray(y_val, dtype=np.float64)

        def evaluate() -> dict[str, float]:
            pred = self._decode(self._network.forward(X_val).astype(np.float64))
            y_true = y.reshape(pred.shape)
            return {
                "val_rmse": math.sqrt(mean_squared_error(y_true, pred)),
                "val_mae": float(mean_absolute_error(y_true, pred)),
                "val_r2": float(r2_score(y_true, pred)),
            }

        return evaluate

    def _decode(self, output: np.ndarray) -> np.ndarray:
        pred = output * self._y_scale + self._y_mean
        return pred.ravel() if pred.shape[1] == 1 else pred

    def predict(self, X) -> np.ndarray:
        return self._decode(self._forward(X))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        return tags


def _labels_to_json(classes: np.ndarray) -> dict:
    values = classes.tolist()
    kind = "object" if classes.dtype == object else classes.dtype.str
    if not all(isinstance(v, (str, int, float, bool)) for v in values):  # any dtype (datetime64 lists dates)
        raise TypeError("only str, int, float or bool class labels can be saved")
    return {"values": values, "dtype": kind}


def _labels_from_json(data: dict) -> np.ndarray:
    if data["dtype"] == "object":
        out = np.empty(len(data["values"]), dtype=object)
        out[:] = data["values"]
        return out
    return np.asarray(data["values"], dtype=np.dtype(data["dtype"]))
