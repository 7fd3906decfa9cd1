"""Data flows one way: sources (files) → loaders (frames) → splits → examples → datamodule."""
