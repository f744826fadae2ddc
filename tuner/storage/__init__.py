"""Where studies live: Optuna storages, creating them safely, the trial budget and its locks.

Also what keeps a study whole when processes die: retries of lost trials and recovery.
"""
