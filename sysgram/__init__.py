"""sysgram: per-binary system-call profiles and live anomaly alerts."""

__version__ = "0.1.0"
