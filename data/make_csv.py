"""Build data/wine_mixed.csv from scikit-learn's bundled wine data (deterministic, no download).

The numeric `alcohol` column becomes a categorical string column `alcohol_level` (low / medium /
high by tertiles, so it still carries signal), the target becomes the string column `cultivar`, and
about 5% of the values of four columns are blanked to exercise imputation.

    python data/make_csv.py
"""

from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.datasets import load_wine

OUT = Path(__file__).with_name("wine_mixed.csv")
CULTIVARS = np.array(["barolo", "grignolino", "barbera"])
WITH_MISSING = ("malic_acid", "magnesium", "hue", "alcohol_level")
MISSING_RATE = 0.05


def build(seed: int = 0) -> pd.DataFrame:
    """The mixed-type wine frame."""
    wine = load_wine(as_frame=True)
    frame = wine.data.copy()
    levels = pd.qcut(frame["alcohol"], 3, labels=["low", "medium", "high"]).astype(str)
    frame.insert(0, "alcohol_level", levels)
    frame = frame.drop(columns=["alcohol"])
    rng = np.random.default_rng(seed)
    for column in WITH_MISSING:
        rows = rng.choice(len(frame), size=round(MISSING_RATE * len(frame)), replace=False)
        frame.loc[rows, column] = None
    frame["cultivar"] = CULTIVARS[wine.target.to_numpy()]
    return frame


if __name__ == "__main__":
    build().to_csv(OUT, index=False)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")
