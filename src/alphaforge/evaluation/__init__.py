"""Evaluation: the purged walk-forward splitter and the scores, pure functions (plugins may import them)."""
