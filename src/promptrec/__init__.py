"""PromptRec: which prompt, which tuning mode, which hyperparameters make a BERT a good recommender."""

__version__ = "0.1.0"
