"""Profiles: detectors over n-gram windows, calibrated thresholds, persistence and store.

Import from the submodules (`sysgram.models.profile`, `.policy`, `.training`, `.store`,
...): this package stays import-light so the CLI starts fast.
"""
