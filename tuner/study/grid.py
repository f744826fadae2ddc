"""The search space as a grid, for Optuna's GridSampler (``[sampler] name = "grid"``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from tuner.study.space import (
    DOMAINS,
    SCALAR_PARAMS,
    Choices,
    Domain,
    Dropped,
    Fixed,
    Range,
    SpaceConfig,
    undrawn_layers,
)


def _grid_values(domain: Domain, spec: Range, n_points: int) -> list[int | float]:
    points = (np.geomspace if spec.log else np.linspace)(spec.low, spec.high, n_points)
    if spec.step:
        points = spec.low + np.round((points - spec.low) / spec.step) * spec.step
        points = np.minimum(points, spec.high)
    if domain.kind == "int":
        return sorted({int(round(p)) for p in points})
    return sorted({float(p) for p in points})


def grid_search_space(space: SpaceConfig, n_points: int = 3) -> dict[str, list[Any]]:
    """The space as a grid for optuna's GridSampler.

    A range becomes `n_points` values from low to high, evenly spaced (geometrically for log ranges,
    snapped to `step`, rounded and deduplicated for integers); choices are kept; fixed and dropped
    parameters are not drawn, so they are not in the grid. Units get one entry per possible layer
    (units_l0 .. units_l{max n_layers - 1}).
    """
    if n_points < 2:
        raise ValueError(f"n_points must be at least 2 (got {n_points})")
    grid: dict[str, list[Any]] = {}

    def values(name: str, spec: Range | Choices | Fixed | Dropped) -> list[Any] | None:
        if isinstance(spec, Range):
            return _grid_values(DOMAINS[name], spec, n_points)
        if isinstance(spec, Choices):
            return list(spec.values)
        return None

    layer_values = values("n_layers", space.n_layers)
    if layer_values is not None:
        grid["n_layers"] = layer_values
    max_layers = max(layer_values) if layer_values else undrawn_layers(space)
    unit_values = values("units", space.units)
    if unit_values is not None:
        for i in range(int(max_layers)):
            grid[f"units_l{i}"] = unit_values
    for name in SCALAR_PARAMS:
        if (v := values(name, getattr(space, name))) is not None:
            grid[name] = v
    return grid
