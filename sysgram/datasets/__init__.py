"""Recordings on disk: the dataset format, its writer and reader, and ADFA-LD import/export.

Recording needs numpy only; nothing here prints (sysgram/commands/ does).
"""

from sysgram.datasets.adfa import export_adfa, import_adfa, read_adfa
from sysgram.datasets.files import DatasetWriteError, DiskFullError
from sysgram.datasets.reader import Dataset
from sysgram.datasets.trace import ThreadTrace
from sysgram.datasets.writer import DatasetWriter

__all__ = [
    "Dataset",
    "DatasetWriteError",
    "DatasetWriter",
    "DiskFullError",
    "ThreadTrace",
    "export_adfa",
    "import_adfa",
    "read_adfa",
]
