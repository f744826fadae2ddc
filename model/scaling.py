"""RealMLP's input scaling: robust scaling of each feature, then smooth clipping.

Robust scaling centres a feature on its median and divides it by its interquartile range, so a
few extreme values do not set the scale (a standard deviation grows with them); smooth clipping,
x / sqrt(1 + (x / 3)^2), then bounds every value to (-3, 3) while keeping small values almost as
they are (it is about x for |x| << 3), so an outlier cannot push the first layer far out of the
range it was trained on.
"""

from __future__ import annotations

import numpy as np

#: Values are smoothly clipped to (-CLIP, CLIP).
CLIP = 3.0


def fit_robust_scale(X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature ``(center, factor)``: the median, and 1 / the interquartile range.

    A feature whose quartiles coincide is scaled by its half range instead, 1 / ((max - min) / 2),
    and a constant feature by 0 (it carries nothing), as RealMLP does. The quantiles are taken a
    column at a time in float64, so the fit holds one column's copy, not one of X.
    """
    quartiles = np.array(
        [
            np.quantile(np.asarray(X[:, j], dtype=np.float64), [0.25, 0.5, 0.75])
            for j in range(X.shape[1])
        ]
    ).reshape(-1, 3)
    low, center, high = quartiles.T
    spread = high - low
    half_range = 0.5 * (np.max(X, axis=0).astype(np.float64) - np.min(X, axis=0))
    spread = np.where(spread > 0, spread, half_range)
    factor = np.divide(1.0, spread, out=np.zeros_like(spread), where=spread > 0)
    return center, factor


def smooth_clip(x: np.ndarray) -> np.ndarray:
    """x / sqrt(1 + (x / CLIP)^2), elementwise: odd, increasing, bounded by +-CLIP.

    The root is ``hypot(1, x / CLIP)``, which does not overflow where (x / CLIP)^2 would (it sends
    x = 1e200 to CLIP, not to 1e200 / inf = 0).
    """
    return x / np.hypot(1.0, x / CLIP)


#: Rows scaled at a time: the float64 work arrays stay this size whatever the input's.
CHUNK_ROWS = 65_536


def robust_scale(
    X: np.ndarray, center: np.ndarray, factor: np.ndarray, dtype: type = np.float64
) -> np.ndarray:
    """``smooth_clip((X - center) * factor)``, computed in float64 and returned as a new array of
    ``dtype``, ``CHUNK_ROWS`` rows at a time (each value is the float64 result rounded once)."""
    out: np.ndarray = np.empty(X.shape, dtype=dtype)
    for start in range(0, X.shape[0], CHUNK_ROWS):
        rows = slice(start, start + CHUNK_ROWS)
        out[rows] = smooth_clip((np.asarray(X[rows], dtype=np.float64) - center) * factor)
    return out
