"""A demo training run: ``python -m model.demo`` trains the MLP on scikit-learn's digits."""

from __future__ import annotations

import time

from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import StandardScaler

from model import MLPClassifier


def main() -> None:
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=0)
    scaler = StandardScaler().fit(X_train)
    clf = MLPClassifier(hidden_layer_sizes=(64,), max_epochs=100, random_state=0)
    start = time.perf_counter()
    clf.fit(scaler.transform(X_train), y_train)
    seconds = time.perf_counter() - start
    accuracy = clf.score(scaler.transform(X_test), y_test)
    print(f"digits: {clf.n_iter_} epochs in {seconds:.2f} s, test accuracy {accuracy:.3f}")


if __name__ == "__main__":
    main()
