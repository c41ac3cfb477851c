"""Data layer: real-format readers, cohort manifests, synthetic cohort, Ray Data streaming."""

from xmodal.errors import ManifestError, RecordError

__all__ = ["RecordError", "ManifestError"]
