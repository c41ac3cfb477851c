"""xmodal: Ray-distributed hyperparameter search for cross-modal contrastive ECG learning."""

__version__ = "0.1.0"
