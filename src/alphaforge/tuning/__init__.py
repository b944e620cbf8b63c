"""Tuning: hyperparameter search (Optuna studies in the service database), search spaces, pruning, AutoML."""
