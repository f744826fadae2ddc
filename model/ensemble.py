"""An ensemble of fitted MLPs: the weighted average of their outputs.

For classifiers the average is over class probabilities (soft voting),
p(x) = Σ_k w_k p_k(x) / Σ_k w_k, and the label is the class of highest average probability; for
regressors it is the average of the predictions. Averaging models that err differently lowers the
variance of the prediction, which is why an ensemble of a study's good trials usually generalises
better than its single best trial (Caruana et al., 2004, "Ensemble selection from libraries of
models").

Members are fitted elsewhere (the ensemble is not trained); they must take the same features and,
for classifiers, know the same classes in the same order. Weights are positive numbers, typically
how many times a greedy selection picked each member.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.base import BaseEstimator

from .serialization import model_state, restore_model, saveable


@saveable
class MLPEnsemble(BaseEstimator):
    """Weighted average of fitted :class:`~model.MLPClassifier` or :class:`~model.MLPRegressor`
    members (all of one kind)."""

    def __init__(
        self, estimators: Sequence[BaseEstimator] = (), weights: Sequence[float] | None = None
    ) -> None:
        self.estimators = estimators
        self.weights = weights

    # --- checks ------------------------------------------------------------------------------
    def _members(self) -> tuple[list[BaseEstimator], np.ndarray]:
        members = list(self.estimators)
        if not members:
            raise ValueError("MLPEnsemble needs at least one fitted estimator")
        weights = (
            np.ones(len(members))
            if self.weights is None
            else np.asarray(self.weights, dtype=np.float64)
        )
        if (
            weights.shape != (len(members),)
            or not np.all(np.isfinite(weights))
            or np.any(weights <= 0)
        ):
            raise ValueError(
                f"weights must be {len(members)} positive numbers, got {self.weights!r}"
            )
        kinds = {hasattr(m, "classes_") for m in members}
        if len(kinds) > 1:
            raise ValueError("an MLPEnsemble mixes classifiers and regressors")
        if hasattr(members[0], "classes_"):
            first = np.asarray(members[0].classes_)
            for m in members[1:]:
                if not np.array_equal(np.asarray(m.classes_), first):
                    raise ValueError("the members of an MLPEnsemble know different classes")
        return members, weights / weights.sum()

    def __sklearn_is_fitted__(self) -> bool:
        from sklearn.utils.validation import check_is_fitted

        try:
            for member in self.estimators:
                check_is_fitted(member)
        except Exception:  # NotFittedError or a member that is no estimator
            return False
        return bool(list(self.estimators))

    @property
    def is_classifier(self) -> bool:
        return hasattr(list(self.estimators)[0], "classes_") if list(self.estimators) else False

    @property
    def classes_(self) -> np.ndarray:
        if not self.is_classifier:
            raise AttributeError("a regression ensemble has no classes_")
        return list(self.estimators)[0].classes_

    @property
    def n_features_in_(self) -> int:
        return int(list(self.estimators)[0].n_features_in_)

    @property
    def n_params_(self) -> int:
        return int(sum(getattr(m, "n_params_", 0) for m in self.estimators))

    def fit(self, X, y, **fit_params) -> MLPEnsemble:
        """Train every member on (X, y) with its own parameters (the weights are kept)."""
        for member in self.estimators:
            member.fit(X, y, **fit_params)
        self._members()
        return self

    # --- state (what model.save writes and model.load reads back) ----------------------------
    def get_state(self) -> tuple[dict, dict[str, np.ndarray]]:
        """``(header, arrays)``: each member's, its arrays prefixed ``m<i>_``, with the weights."""
        members, weights = self._members()
        meta: dict = {"weights": [float(w) for w in weights], "members": []}
        arrays: dict[str, np.ndarray] = {}
        for i, member in enumerate(members):
            member_meta, member_arrays = model_state(member)
            meta["members"].append(member_meta)
            arrays.update({f"m{i}_{name}": a for name, a in member_arrays.items()})
        return meta, arrays

    @classmethod
    def from_state(cls, meta: dict, arrays: dict[str, np.ndarray]) -> MLPEnsemble:
        """The ensemble that :meth:`get_state` described, checked as at saving."""
        members = []
        for i, member_meta in enumerate(meta["members"]):
            prefix = f"m{i}_"
            member_arrays = {
                name[len(prefix) :]: a for name, a in arrays.items() if name.startswith(prefix)
            }
            members.append(restore_model(member_meta, member_arrays))
        ensemble = cls(members, list(meta["weights"]))
        ensemble._members()
        return ensemble

    # --- prediction --------------------------------------------------------------------------
    def predict_proba(self, X) -> np.ndarray:
        """Average class probabilities of the members (classifiers only)."""
        if not self.is_classifier:
            raise AttributeError("predict_proba is only available for classifiers")
        members, weights = self._members()
        return sum(
            w * np.asarray(m.predict_proba(X), dtype=np.float64)
            for m, w in zip(members, weights, strict=True)
        )

    def predict(self, X) -> np.ndarray:
        """Labels of the highest average probability (indicators over 0.5 for multi-label
        members), or the average prediction of regressors."""
        members, weights = self._members()
        if not self.is_classifier:
            return sum(
                w * np.asarray(m.predict(X), dtype=np.float64)
                for m, w in zip(members, weights, strict=True)
            )
        proba = self.predict_proba(X)
        if getattr(members[0], "_multilabel", False):
            return (proba > 0.5).astype(int)
        return np.asarray(self.classes_)[np.argmax(proba, axis=1)]

    def score(self, X, y) -> float:
        """Accuracy (classifiers) or R² (regressors), as scikit-learn's mixins define them."""
        from sklearn.metrics import accuracy_score, r2_score

        pred = self.predict(X)
        return float(accuracy_score(y, pred) if self.is_classifier else r2_score(y, pred))
