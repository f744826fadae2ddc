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
    and a constant feature by 0 (it carries nothing), as RealMLP does.
    """
    X = np.asarray(X, dtype=np.float64)
    low, center, high = np.quantile(X, [0.25, 0.5, 0.75], axis=0)
    spread = high - low
    half_range = 0.5 * (X.max(axis=0) - X.min(axis=0))
    spread = np.where(spread > 0, spread, half_range)
    factor = np.divide(1.0, spread, out=np.zeros_like(spread), where=spread > 0)
    return center, factor


def smooth_clip(x: np.ndarray) -> np.ndarray:
    """x / sqrt(1 + (x / CLIP)^2), elementwise: odd, increasing, bounded by +-CLIP.

    The root is ``hypot(1, x / CLIP)``, which does not overflow where (x / CLIP)^2 would (it sends
    x = 1e200 to CLIP, not to 1e200 / inf = 0).
    """
    return x / np.hypot(1.0, x / CLIP)


def robust_scale(X: np.ndarray, center: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """``smooth_clip((X - center) * factor)`` in float64, a new array."""
    return smooth_clip((np.asarray(X, dtype=np.float64) - center) * factor)
