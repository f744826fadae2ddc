"""Where studies live: Optuna storages, creating them safely, the trial budget, locks, retries and recovery."""
