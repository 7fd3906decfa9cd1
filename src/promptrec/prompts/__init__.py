"""Prompts: an example's fields → the text the language model reads."""
