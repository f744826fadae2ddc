"""The input checks of a fitted estimator's ``partial_fit``: a fast path for plain NumPy arrays.

Each ``partial_fit`` call checks its ``X`` and ``y`` with scikit-learn's ``validate_data``, whose
generic machinery (dataframe detection, dtype resolution, tags, feature names) costs far more
than the checks themselves on the few thousand rows of an incremental epoch, and is paid on
every call. :func:`accepted_as_is` recognises the common case, plain arrays that
``validate_data(..., reset=False)`` would return unchanged, with a few attribute tests and one
finiteness pass; anything else (lists, dataframes, other dtypes, NaN or infinity, a wrong shape)
goes through ``validate_data`` itself, so its conversions, warnings and error messages stay
scikit-learn's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: The ``dtype`` argument the estimators give ``validate_data`` for X: these dtypes are kept.
X_DTYPES = (np.float64, np.float32)

#: Kinds of y that ``check_array(y, dtype=None)`` keeps as they are and checks no further than
#: for finiteness (floats only): booleans, integers, floats, strings.
_PLAIN_Y_KINDS = frozenset("biufUS")


def accepted_as_is(estimator: Any, X: Any, y: Any) -> bool:
    """Whether ``validate_data(estimator, X, y, reset=False, dtype=X_DTYPES, multi_output=True)``
    would return ``X`` and ``y`` themselves, unchanged and without a warning.

    True only for a fitted estimator without feature names, an ``np.ndarray`` X (not a subclass,
    which ``validate_data`` would convert) of 2 dimensions, a kept dtype and the fitted number of
    features, at least one row, all finite; and an ``np.ndarray`` y of 1 or 2 dimensions (at
    least one column), as many rows, of a plain kind, finite if floating. False says nothing:
    the caller runs ``validate_data`` then, which accepts, converts or refuses the input.
    """
    if type(X) is not np.ndarray or type(y) is not np.ndarray:
        return False
    n_features = getattr(estimator, "n_features_in_", None)
    if n_features is None or hasattr(estimator, "feature_names_in_"):
        return False
    if X.ndim != 2 or X.dtype not in X_DTYPES or X.shape[1] != n_features or X.shape[0] < 1:
        return False
    if not 1 <= y.ndim <= 2 or y.shape[0] != X.shape[0] or (y.ndim == 2 and y.shape[1] < 1):
        return False
    if y.dtype.kind not in _PLAIN_Y_KINDS:
        return False
    if y.dtype.kind == "f" and not np.isfinite(y).all():
        return False
    return bool(np.isfinite(X).all())
