"""Models: backbones (which BERT), tuning modes (which parameters train, and the callbacks they
need) and the ID baselines, each built by name (build.py)."""
