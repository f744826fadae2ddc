"""A multilayer perceptron written with NumPy alone, behind scikit-learn estimators."""

from .classifier import MLPClassifier
from .ensemble import MLPEnsemble
from .regressor import MLPRegressor
from .serialization import load, save
from .training import DivergenceError, EpochCallback

__all__ = [
    "MLPClassifier",
    "MLPRegressor",
    "MLPEnsemble",
    "DivergenceError",
    "EpochCallback",
    "load",
    "save",
]
