"""Live watch: score a binary's threads window by window and explain what is anomalous.

`WatchEngine` turns collector items into alerts; `ThresholdScorer` applies the profile's
alert policy (`sysgram.models.policy`) to each batch; `alerts` holds the JSON schema
(docs/alerts.md); `sanitize` makes untrusted names safe for a terminal. docs/design.md §7.
"""

from sysgram.features.stream import ThreadStream
from sysgram.sanitize import for_terminal
from sysgram.watch.aggregate import Aggregator
from sysgram.watch.alerts import SCHEMA, Alert, ProcessContext, Repeat, to_json_line
from sysgram.watch.engine import WatchConfig, WatchEngine, WatchStats
from sysgram.watch.scoring import ThresholdScorer

__all__ = [
    "SCHEMA",
    "Aggregator",
    "Alert",
    "ProcessContext",
    "Repeat",
    "ThreadStream",
    "ThresholdScorer",
    "WatchConfig",
    "WatchEngine",
    "WatchStats",
    "for_terminal",
    "to_json_line",
]
