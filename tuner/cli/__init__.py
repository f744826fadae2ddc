"""The ``tuner`` command."""
