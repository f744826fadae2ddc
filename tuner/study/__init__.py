"""The study file and what it defines: its settings, the search space, the metrics."""
