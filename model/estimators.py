"""The shared base of the scikit-learn estimators over the NumPy network: parameters, fitting,
saving; :mod:`model.classifier` and :mod:`model.regressor` say how targets become outputs."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable, Sequence

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted, validate_data

from .activations import get_activation
from .checks import X_DTYPES, accepted_as_is
from .losses import OutputLoss
from .network import Network
from .optimizers import OPTIMIZERS, AdamW, check_optimizer_name
from .parameters import DTYPES, NUMERIC_PARAMETERS, check_numeric_parameters
from .scaling import fit_robust_scale, robust_scale
from .schedules import make_schedule
from .serialization import save as save_model
from .training import EpochCallback, StoppingRules, TrainingState, train


class BaseMLP(BaseEstimator):
    """Shared fitting logic; subclasses define how targets become network outputs."""

    def __init__(
        self,
        hidden_layer_sizes: Sequence[int] | int = (256, 256),
        activation: str = "relu",
        optimizer: str = "adamw",
        learning_rate: float = 1e-3,
        lr_schedule: str = "cosine",
        batch_size: int = 256,
        max_epochs: int = 256,
        tol: float = 1e-4,
        n_iter_no_change: int = 256,
        l2: float = 0.3,
        dropout: float = 0.3,
        early_stopping: bool = False,
        validation_fraction: float = 0.1,
        patience: int = 10,
        random_state: int | np.random.RandomState | None = None,
        dtype: str = "float32",
        early_stopping_metric: str = "score",
        label_smoothing: float = 0.0,
        robust_scaling: bool = True,
        epoch_rows: int | None = None,
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
        self.label_smoothing = label_smoothing
        self.robust_scaling = robust_scaling
        self.epoch_rows = epoch_rows

    # --- subclass hooks -------------------------------------------------------------------
    def _encode_targets(self, y: np.ndarray, fitting: bool) -> np.ndarray:
        raise NotImplementedError

    def _output_loss(self) -> OutputLoss:
        raise NotImplementedError

    def _training_targets(self, Y: np.ndarray) -> np.ndarray:
        """The encoded targets the network trains on (a classifier smooths its labels here)."""
        return Y

    def _validation_evaluator(
        self, X_val: np.ndarray, y_val: np.ndarray
    ) -> Callable[[], dict[str, float]]:
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
        given = self.hidden_layer_sizes
        # int as well as numbers.Integral: typeshed does not register int as an Integral.
        sizes = [given] if isinstance(given, (int, numbers.Integral)) else list(given)
        if not all(isinstance(s, numbers.Integral) and s > 0 for s in sizes):
            raise ValueError(
                f"hidden_layer_sizes must be positive integers, got {self.hidden_layer_sizes!r}"
            )
        get_activation(self.activation)
        check_optimizer_name(self.optimizer)
        make_schedule(self.lr_schedule, 1.0, 1)
        # The parameters by name, as get_params() has them, without its signature inspection.
        check_numeric_parameters({name: getattr(self, name) for name in NUMERIC_PARAMETERS})
        if self.early_stopping_metric not in self._monitors:
            raise ValueError(
                f"early_stopping_metric must be one of {sorted(self._monitors)}, "
                f"got {self.early_stopping_metric!r}"
            )
        if not isinstance(self.robust_scaling, (bool, np.bool_)):
            raise ValueError(f"robust_scaling must be True or False, got {self.robust_scaling!r}")
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
        """Train for ``max_epochs`` epochs (one when ``incremental``), from scratch unless
        ``incremental`` continues a fitted network."""
        dtype = self._check_hyperparameters()
        first = not (incremental and hasattr(self, "_network"))
        X, Y, X_val, y_val = self._training_data(
            X, y, X_val, y_val, first, incremental, classes, dtype
        )
        self._ensure_network(X.shape[1], Y.shape[1], first, dtype)
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
            rules=self._stopping_rules(incremental, X_val is not None),
            rng=self._rng,
            state=state,
            evaluate=evaluate,
            monitor=self._monitors[self.early_stopping_metric][0],
            callbacks=callbacks,
            epoch_rows=self.epoch_rows,
        )
        if not incremental:  # partial_fit calls reuse them epoch after epoch
            self._network.release_buffers()
        self._record_training(state, incremental)
        return self

    def _training_data(self, X, y, X_val, y_val, first: bool, incremental: bool, classes, dtype):
        """Checked training arrays ``(X, Y)`` in the training dtype, ``Y`` encoded for the
        network, and the validation rows: those given, or a ``validation_fraction`` held out
        of the training rows for early stopping."""
        # A fitted estimator's plain arrays skip validate_data, which would return them as they
        # are (model.checks): its generic machinery is most of a small partial_fit call's cost.
        if first or not accepted_as_is(self, X, y):
            X, y = validate_data(self, X, y, reset=first, dtype=X_DTYPES, multi_output=True)
        if X.shape[0] == 0:
            raise ValueError("cannot fit on empty data: X has 0 samples")
        y = self._prepare_y(y)
        if first:
            self._input_scaling = fit_robust_scale(X) if self.robust_scaling else None
        X = self._scale_inputs(X, dtype)
        if first:
            self._rng = self._seed_rng()
        if first and classes is not None:
            self._set_classes(classes)
        Y = self._encode_targets(y, fitting=first and classes is None)
        if X_val is not None:
            if y_val is None:
                raise ValueError("X_val was given without y_val")
            X_val = self._scale_inputs(
                validate_data(self, X_val, reset=False, dtype=(np.float64, np.float32))
            )
            y_val = self._prepare_y(np.asarray(y_val))
        elif self.early_stopping and not incremental:
            X, X_val, Y, y_val = self._split_validation(X, y, Y)
        return (
            np.ascontiguousarray(X, dtype=dtype),
            np.ascontiguousarray(self._training_targets(Y), dtype=dtype),
            X_val,
            y_val,
        )

    def _ensure_network(self, n_in: int, n_out: int, first: bool, dtype: np.dtype) -> None:
        """Build and initialise the network on a first fit; else check it has ``n_out`` outputs."""
        if first:
            self._network = Network(
                [n_in, *self._layer_sizes, n_out],
                self.activation,
                self._output_loss(),
                dtype=dtype,
                dropout=self.dropout,
            )
            self._network.initialize(self._rng)
            self._init_solver(TrainingState())
        elif self._network.layer_sizes[-1] != n_out:
            raise ValueError(
                f"y has {n_out} outputs but the model was fitted with "
                f"{self._network.layer_sizes[-1]}"
            )

    def _stopping_rules(self, incremental: bool, has_validation: bool) -> StoppingRules:
        return StoppingRules(
            max_epochs=1 if incremental else self.max_epochs,
            tol=self.tol,
            n_iter_no_change=self.n_iter_no_change,
            early_stopping=bool(self.early_stopping) and has_validation,
            patience=self.patience,
            higher_is_better=self._monitors[self.early_stopping_metric][1],
        )

    def _record_training(self, state: TrainingState, incremental: bool) -> None:
        """The fitted attributes of the training record; a ConvergenceWarning when a full fit
        ran out of epochs before the loss converged, unless its learning-rate schedule is laid
        out over ``max_epochs`` (cosine, coslog4, ...): that training ends there by design."""
        self.loss_curve_ = list(state.loss_curve)
        self.validation_scores_ = list(state.validation_scores)
        self.n_iter_ = state.epoch
        self.t_ = state.steps
        self.best_loss_ = state.best_loss
        self.best_epoch_ = state.best_epoch
        self.stop_reason_ = state.stop_reason
        budgeted = self._schedule.ends_at_max_epochs
        if not incremental and state.stop_reason == "max_epochs" and not budgeted:
            warnings.warn(
                f"{type(self).__name__}: reached max_epochs={self.max_epochs} "
                "before the loss converged",
                ConvergenceWarning,
                stacklevel=4,
            )

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

    def _scale_inputs(self, X: np.ndarray, dtype: type = np.float64) -> np.ndarray:
        """X as the network sees it: robustly scaled and smoothly clipped with ``robust_scaling``
        (:mod:`model.scaling`, fitted on the first fit's rows) into a new array of ``dtype``,
        else unchanged."""
        if self._input_scaling is None:
            return X
        return robust_scale(X, *self._input_scaling, dtype=dtype)

    # --- prediction ------------------------------------------------------------------------
    #: Prediction computes in float64 on fresh arrays (:meth:`Network.predict_logits`), so a
    #: large input is predicted this many rows at a time: its float64 copy and activations stay
    #: bounded instead of growing with the input (see :func:`prediction_chunks`).
    prediction_chunk_rows = 65_536

    def _forward(self, X) -> np.ndarray:
        """The network's output for ``X`` (float32 or float64, not copied), in float64."""
        check_is_fitted(self, "_network")
        X = validate_data(self, X, reset=False, dtype=(np.float64, np.float32))
        outputs = [
            self._network.predict_output(self._scale_inputs(X[rows]))
            for rows in prediction_chunks(X.shape[0], self.prediction_chunk_rows)
        ]
        return outputs[0] if len(outputs) == 1 else np.concatenate(outputs)

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
        for k, (W, b) in enumerate(zip(self.coefs_, self.intercepts_, strict=True)):
            arrays[f"coef_{k}"] = W
            arrays[f"intercept_{k}"] = b
        if self._input_scaling is not None:
            arrays["input_center"], arrays["input_factor"] = self._input_scaling
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
            meta["layer_sizes"],
            params["activation"],
            est._output_loss(),
            dtype=arrays["coef_0"].dtype,
            dropout=params["dropout"],
        )
        network.set_params(
            [arrays[f"coef_{k}"] for k in range(n_layers)],
            [arrays[f"intercept_{k}"] for k in range(n_layers)],
        )
        est._network = network
        est._input_scaling = None
        if params.get("robust_scaling"):
            est._input_scaling = (arrays["input_center"], arrays["input_factor"])
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
                epoch=est.n_iter_,
                loss_curve=list(est.loss_curve_),
                validation_scores=list(est.validation_scores_),
                best_epoch=est.best_epoch_,
            )
        )
        return est

    def _target_state(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        """Add what maps network outputs to targets (classes, target scaling) to the state."""
        raise NotImplementedError

    def _restore_targets(self, meta: dict, arrays: dict[str, np.ndarray]) -> None:
        raise NotImplementedError


def prediction_chunks(n_rows: int, chunk_rows: int) -> list[slice]:
    """Row slices that cover ``n_rows`` rows in order, each ``chunk_rows`` long but the last,
    which takes the remainder and, when that is under half a chunk, the chunk before it too.

    Chunks start at multiples of ``chunk_rows`` and none is tiny: OpenBLAS computes a product of
    one or a few rows, or of few multiply-adds, through other kernels (gemv, its small-matrix
    path) whose float64 sums round differently. With chunks of tens of thousands of rows and one
    BLAS thread (a study's setting, :mod:`tuner.threads`) the chunked output equals the whole
    input's bit for bit (tests/model/test_prediction_chunks.py). With several threads, a network
    with one output (a regressor, a binary classifier) goes through a threaded gemv whose rows
    may differ in the last bit between the whole input and its chunks.
    """
    chunk_rows = max(1, int(chunk_rows))
    starts = list(range(0, n_rows, chunk_rows)) or [0]
    if len(starts) > 1 and n_rows - starts[-1] < chunk_rows // 2:
        starts.pop()
    return [slice(a, b) for a, b in zip(starts, [*starts[1:], n_rows], strict=True)]


def _check_layer_arrays(layer_sizes: list, arrays: dict[str, np.ndarray]) -> None:
    """Refuse saved layer sizes that the saved weights do not have, before a network of those
    sizes is allocated: the arrays, whose size the file bounds, decide what is built."""
    sizes = [int(s) for s in layer_sizes]
    n_layers = len(sizes) - 1
    for k in range(max(n_layers, 0)):
        W, b = arrays.get(f"coef_{k}"), arrays.get(f"intercept_{k}")
        if (
            W is None
            or b is None
            or W.shape != (sizes[k], sizes[k + 1])
            or b.shape != (sizes[k + 1],)
        ):
            raise ValueError(
                f"layer {k}: the saved weights do not have the saved layer sizes {sizes}"
            )
    if n_layers < 1 or f"coef_{n_layers}" in arrays:
        raise ValueError(f"the saved layer sizes {sizes} do not match the saved weights")
