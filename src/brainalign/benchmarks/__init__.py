"""Brain-Score-style benchmarks: data + metric + ceiling, the model zoo's scores and the leaderboard.

May import: the base modules, data, features, metrics, runs.
"""
