"""The search: the objective a trial runs, samplers, pruners, warm starts, costs and
constraints, Pareto fronts."""
