"""Which cgroup a process runs in, which container that is, and cgroup subtrees (--cgroup).

Pure functions over the text of /proc/PID/cgroup and cgroup paths, so the layouts of
docker, containerd / CRI-O (Kubernetes) and podman are tested on real-looking paths
without any of them installed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from sysgram.errors import UserError

# Where cgroupfs is mounted: a path given as a directory is cut back to the cgroup path.
_MOUNT_PREFIXES = ("/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup")
_HEX64 = r"[0-9a-f]{64}"
# (runtime, pattern) in the order they are tried; each captures the 64-hex container id.
_LAYOUTS = (
    # docker: cgroupfs driver (/docker/ID) and systemd driver (docker-ID.scope)
    ("docker", re.compile(rf"/docker[-/]({_HEX64})(?:\.scope)?(?:/|$)")),
    # containerd under Kubernetes: cri-containerd-ID.scope, or ...:cri-containerd:ID
    ("containerd", re.compile(rf"cri-containerd[-:]({_HEX64})(?:\.scope)?(?:/|$)")),
    # CRI-O: crio-ID.scope (crio-conmon-ID is the monitor, not the container)
    ("cri-o", re.compile(rf"/crio-({_HEX64})(?:\.scope)?(?:/|$)")),
    # podman: libpod-ID.scope, possibly with /container below it (libpod-conmon-: monitor)
    ("podman", re.compile(rf"/libpod-({_HEX64})(?:\.scope)?(?:/|$)")),
    # containerd without Kubernetes (nerdctl, cgroupfs driver): /<namespace>/ID
    ("containerd", re.compile(rf"^/(?:default|moby|k8s\.io)/({_HEX64})(?:/|$)")),
    # Kubernetes with the cgroupfs driver: /kubepods/<qos>/pod<uid>/ID
    ("containerd", re.compile(rf"/kubepods/(?:[a-z]+/)?pod[0-9a-f-]+/({_HEX64})(?:/|$)")),
)


@dataclass(frozen=True)
class Container:
    runtime: str
    id: str

    @property
    def short_id(self) -> str:
        return self.id[:12]


def cgroup_path(proc_cgroup: str) -> str | None:
    """The process's cgroup path from /proc/PID/cgroup text.

    cgroup v2 has one line `0::PATH`; on a hybrid host that line may say `/` while the v1
    hierarchies hold the real place: then the systemd (name=systemd) one, else the most
    specific v1 path is taken.
    """
    unified = named = None
    v1: list[str] = []
    for line in proc_cgroup.splitlines():
        hier, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if not path:
            continue
        if hier == "0" and controllers == "":
            unified = path
        elif controllers == "name=systemd":
            named = path
        else:
            v1.append(path)
    for candidate in (unified, named, max(v1, key=len, default=None)):
        if candidate and candidate != "/":
            return candidate
    return unified or named or (v1[0] if v1 else None)


def container_of(path: str | None) -> Container | None:
    """The container a cgroup path belongs to (docker, containerd, CRI-O, podman), if any."""
    if not path:
        return None
    for runtime, pattern in _LAYOUTS:
        found = pattern.search(path)
        if found:
            return Container(runtime, found.group(1))
    return None


def unified_path(proc_cgroup: str) -> str | None:
    """The cgroup v2 path (the `0::PATH` line) from /proc/PID/cgroup text."""
    for line in proc_cgroup.splitlines():
        if line.startswith("0::"):
            return line[3:]
    return None


def cgroup2_mount(mountinfo: str) -> str | None:
    """Where the cgroup v2 hierarchy is mounted, from /proc/self/mountinfo text."""
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        if right.split(" ", 1)[0] == "cgroup2":
            return left.split()[4]
    return None


@dataclass(frozen=True)
class Subtree:
    """A cgroup v2 subtree: its path (as /proc/PID/cgroup shows it), kernel id and depth."""

    path: str
    id: int
    level: int


def resolve_subtree(given: str) -> Subtree:
    """--cgroup PATH (a cgroup path or a cgroupfs directory) -> the subtree the kernel checks."""
    try:
        mount = cgroup2_mount(Path("/proc/self/mountinfo").read_text())
    except OSError:
        mount = None
    if mount is None:
        raise UserError("--cgroup needs the cgroup v2 hierarchy, and none is mounted here; "
                        "mount cgroup2 (systemd does with cgroup v2 or the hybrid layout).")
    path = "/" + given.strip().strip("/")
    if path == mount or path.startswith(mount.rstrip("/") + "/"):
        path = path[len(mount.rstrip("/")):] or "/"
    else:
        path = normalize(path)
    directory = Path(mount) / path.lstrip("/")
    if not directory.is_dir():
        raise UserError(f"--cgroup {given}: there is no cgroup {path} under {mount}; give a "
                        "path as /proc/PID/cgroup shows it (e.g. /system.slice/nginx.service).")
    level = 0 if path == "/" else path.count("/")
    # A cgroup v2 directory's inode number is the cgroup's kernel id.
    return Subtree(path=path, id=os.stat(directory).st_ino, level=level)


def normalize(path: str) -> str:
    """A cgroup path as /proc/PID/cgroup shows it, also when given as a cgroupfs directory."""
    path = "/" + path.strip().strip("/")
    for prefix in _MOUNT_PREFIXES:
        if path == prefix or path.startswith(prefix + "/"):
            path = path[len(prefix):] or "/"
            break
    return path


def is_within(path: str | None, root: str) -> bool:
    """Whether cgroup `path` is `root` or below it (`root` normalized)."""
    if path is None:
        return False
    if root == "/":
        return True
    return path == root or path.startswith(root.rstrip("/") + "/")
