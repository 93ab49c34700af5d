"""Hyperparameter search with Optuna: spaces from conf/tune/*.toml, pruning through the
training loop's hooks, resumable local or shared (PostgreSQL) storage, retraining and the
study report."""
