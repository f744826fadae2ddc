"""Hyperparameter tuning of the NumPy MLP with Optuna, tracked in MLflow."""
