"""Synthetic paired cohorts (placeholder while the package is written)."""
