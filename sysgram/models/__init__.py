"""Profiles: detectors over n-gram windows, calibrated thresholds, persistence and store.

Import from the submodules (`sysgram.models.profile`, `.store`, `.streaming`, ...): this
package stays import-light so the CLI starts fast.
"""
