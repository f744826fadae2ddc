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


def smooth_clip(
    x: np.ndarray, out: np.ndarray | None = None, scratch: np.ndarray | None = None
) -> np.ndarray:
    """x / sqrt(1 + (x / CLIP)^2), elementwise: odd, increasing, bounded by +-CLIP.

    The root is ``hypot(1, x / CLIP)``, which does not overflow where (x / CLIP)^2 would (it sends
    x = 1e200 to CLIP, not to 1e200 / inf = 0). ``out`` takes the result and ``scratch`` (shaped
    like x, float) the root, instead of new arrays.
    """
    root = np.divide(x, CLIP, out=scratch)
    np.hypot(1.0, root, out=root)
    return np.divide(x, root, out=out)


#: Values scaled at a time (1 MB of float64): the work arrays stay in the cache whatever the
#: input's size, which makes the scaling about twice as fast on large inputs as whole-array passes.
CHUNK_VALUES = 1 << 17


def robust_scale(
    X: np.ndarray, center: np.ndarray, factor: np.ndarray, dtype: type = np.float64
) -> np.ndarray:
    """``smooth_clip((X - center) * factor)``, computed in float64 and returned as a new array of
    ``dtype``, about ``CHUNK_VALUES`` values at a time into two reused work arrays (each value is
    the float64 result rounded once)."""
    out: np.ndarray = np.empty(X.shape, dtype=dtype)
    rows = max(1, CHUNK_VALUES // max(1, X.shape[1]))
    scaled = np.empty((min(rows, X.shape[0]), *X.shape[1:]), dtype=np.float64)
    root = np.empty_like(scaled)
    for start in range(0, X.shape[0], rows):
        chunk = slice(start, start + rows)
        n = len(out[chunk])
        x, r = scaled[:n], root[:n]
        np.subtract(X[chunk], center, out=x)
        x *= factor
        smooth_clip(x, out=out[chunk], scratch=r)
    return out
