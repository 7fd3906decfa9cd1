"""Data: sources (files) → loaders (frames) → splits → catalogue, examples, negatives. Plain frames:
no tokenizer, no task."""
