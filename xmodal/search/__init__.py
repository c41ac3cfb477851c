"""Per-pathology hyperparameter search with Ray Tune + Optuna."""
