"""What a study hands back: the final model, its export as an MLflow model, and serving it."""
