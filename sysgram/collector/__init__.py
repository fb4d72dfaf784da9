"""The collector: kernel program + ordered, loss-accounted drains of per-thread syscall ids."""

from sysgram.collector.collector import Collector
from sysgram.collector.items import (
    CollectorStats,
    Drain,
    DrainItem,
    Exec,
    Gap,
    TargetSpec,
    ThreadEvents,
    ThreadExit,
    ThreadStart,
    Touched,
    TouchedGap,
)

__all__ = [
    "Collector", "CollectorStats", "Drain", "DrainItem", "Exec", "Gap", "TargetSpec",
    "ThreadEvents", "ThreadExit", "ThreadStart", "Touched", "TouchedGap",
]
