"""Comparing runs: read run folders (runs.py), aggregate them over seeds (summary.py), write the
tables and figures (report.py; the figures are drawn by runtime/plots.py) and re-run one to check
it reproduces (reproduce.py)."""
