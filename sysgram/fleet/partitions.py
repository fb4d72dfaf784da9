"""Where the Parquet partitions are: local paths or fsspec URLs -> (host, binary_name) groups."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote

from sysgram.errors import UserError


@dataclass(frozen=True)
class Partition:
    """The files of one host=/binary_name= directory, in name (= write) order."""

    url: str                # the source they were found under (names the filesystem)
    host: str
    binary_name: str
    files: tuple[str, ...]  # paths on that filesystem
    bytes: int              # on disk


def is_parquet_source(source: str) -> bool:
    """A URL, a .parquet file, or a directory holding Parquet recordings (not a dataset)."""
    if "://" in source:
        return True
    from pathlib import Path

    path = Path(source)
    if path.is_file():
        return path.suffix == ".parquet"
    return path.is_dir() and not (path / "meta.json").exists() and (
        (path / "_sysgram").is_dir() or any(path.glob("host=*")))


def find_partitions(sources: list[str]) -> list[Partition]:
    """Every host=/binary_name= partition under the sources, each listed once."""
    import fsspec

    groups: dict[tuple[str, str], tuple[str, list[str], int]] = {}
    for url in sources:
        try:
            fs, root = fsspec.core.url_to_fs(url)
            found = fs.find(root, detail=True)
        except (OSError, ValueError, ImportError) as exc:
            raise UserError(f"cannot list {url} ({exc}); check the path or URL (and that "
                            "the filesystem's fsspec package is installed).") from None
        for path, info in sorted(found.items()):
            keys = _hive_keys(path)
            if not path.endswith(".parquet") or keys is None or _hidden(path):
                continue
            entry = groups.setdefault(keys, (url, [], 0))
            entry[1].append(path)
            groups[keys] = (entry[0], entry[1], entry[2] + int(info.get("size") or 0))
    if not groups:
        raise UserError(f"no Parquet recordings (host=.../binary_name=.../*.parquet) under "
                        f"{', '.join(sources)}; write them with `sysgram record --format "
                        "parquet` or `sysgram export --format parquet`.")
    return [Partition(url, host, name, tuple(sorted(files)), size)
            for (host, name), (url, files, size) in sorted(groups.items())]


def _hive_keys(path: str) -> tuple[str, str] | None:
    parts = path.split("/")
    keys = {}
    for part in parts[:-1]:
        key, sep, value = part.partition("=")
        if sep and key in ("host", "binary_name"):
            keys[key] = unquote(value)
    if "host" not in keys or "binary_name" not in keys:
        return None
    return keys["host"], keys["binary_name"]


def _hidden(path: str) -> bool:
    """Files pyarrow and Spark skip too: temporaries and metadata (`.`, `_` prefixes)."""
    return any(part.startswith((".", "_")) for part in path.split("/")[-1:])
