"""Run-time: the config schema and its checks, building a run, training and evaluation, and
everything a run leaves behind (run folder, W&B, checkpoints, costs, figures)."""
