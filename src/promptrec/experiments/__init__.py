"""Comparing runs: read run folders (runs.py), aggregate them over seeds (summary.py), draw them
(figures.py) and re-run one to check it reproduces (reproduce.py)."""
