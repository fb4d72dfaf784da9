"""What a binary normally touches, learned as sets: programs, file templates, peers, ports.

Pure functions turn one touched record (a collector item or a dataset record, as a
dict) into the key it is learned and matched by; `TouchedSets` is the estimator that
learns the sets and says which records of a window are new.

File paths are generalised to templates so names that differ per process, per run or
per connection match what was learned:
  - an absolute path is first normalised lexically (`.`, `..` and repeated slashes
    resolved), at fit and at watch, so `/srv/www/../../etc/shadow` is `/etc/shadow`; a
    relative path (openat from a dirfd) is kept as it is, and one holding `..` matches
    only an identical learned entry, never a `dir/*`;
  - `/proc/<pid>/...` and `/proc/<pid>/task/<tid>/...` (also `/proc/self`, `thread-self`
    as they are);
  - a component made only of digits is `<n>`; a component that is a hex hash or a uuid
    (16+ hex digits, dashes allowed) is `<hex>`;
  - in temporary directories (/tmp, /var/tmp, /dev/shm, /run/user/<n>): a run of 6+
    letters, digits and underscores that holds a digit or mixes upper and lower case
    (mkstemp's XXXXXX) is `<random>`, and Python's tempfile names (tmp + 8 of
    [a-z0-9_]) are `tmp<random>` whatever they hold;
  - outside the system directories (/usr, /lib*, /bin, /sbin, /etc, /opt, /boot),
    digit runs inside a component are `<n>` (rotated logs `x.log.3`, `pgsql_tmp123.0`);
  - at fit, a directory with more than `collapse_after` distinct templates below it is
    learned as `dir/*` (any name in it: a web root served file by file), except the
    directories of NEVER_COLLAPSE (/etc, /root, ssh keys, executables, ...), whose names
    stay exact;
  - a path the kernel cut (it filled its 256-byte buffer: the rest was never read) is
    `<its template>//<cut>` and matches only that same learned cut entry, never a
    `dir/*` (the unread rest could hold `/../../etc/shadow`);
  - a path the kernel could not read (its page not yet in memory) is `<unreadable>`, an
    item like any other, so it is never a blind spot.
Roles: a record may carry the process's `role`: `root` for the binary's first process (a
master, a listener: its parent is not the binary's) and `child` for the processes it
forked and what they ran. A server that hands its work to children keeps its root to
itself: sshd's listener accepts and forks, its children read /etc/shadow. So the sets
also learn what the root touched alone (`root_sets_`), and a root process touching an
item only children touched in training is new for it. Records without a role (older
recordings, imported corpora) learn and are matched against the binary's sets only.
Peers: loopback addresses are `loopback`, addresses in the host's subnets `subnet`
(ports kept), anything else exactly; an accepted connection is "any client" of its
protocol; a bind is a listening address and port (port 0: `ephemeral`).
"""

from __future__ import annotations

import fnmatch
import ipaddress
import json
import os
import posixpath
import re
import subprocess
from collections.abc import Iterable, Sequence

import numpy as np

from sysgram.bpf.sizes import TOUCH_PATH_LEN
from sysgram.errors import UserError
from sysgram.models.estimator import Estimator
from sysgram.sanitize import printable

SETS = ("programs", "files", "peers", "listens")
ROOT, CHILD = "root", "child"
_TEMP_DIRS = ("/tmp/", "/var/tmp/", "/dev/shm/", "/run/user/")
_SYSTEM_DIRS = ("/usr/", "/lib", "/bin/", "/sbin/", "/etc/", "/opt/", "/boot/")
_DIGITS = re.compile(r"^\d+$")
_HEX = re.compile(r"^[0-9a-fA-F-]{16,}$")
_RUN = re.compile(r"[A-Za-z0-9_]{6,}")
_PY_TEMP = re.compile(r"^tmp[a-z0-9_]{8}")      # Python's tempfile: tmp + 8 random chars
_DIGIT_RUN = re.compile(r"\d+")
NET_KINDS = ("connect", "accept", "bind", "send")
UNREADABLE = "<unreadable>"
# Marks the key of a cut path. A normalised absolute template never holds `//`, and a
# relative path is kept whole and shorter than a cut one, so no whole path has this key.
CUT = "//<cut>"

# Directories whose names are never learned as `dir/*`, however many were seen: one
# name more in them is a break-in, not a new page (credentials, configuration and
# persistence, boot, executables, raw devices, other processes' memory). Their names
# are a fixed set on a host, so keeping them exact costs entries, not false alarms.
# `*` is one component, a trailing `/**` the directory and every one below it.
NEVER_COLLAPSE = (
    "/",                                   # /etc, /root, ... themselves
    "/etc/**",                             # shadow, sudoers, ssh, ssl/private, cron, pam
    "/root/**",
    "/home", "/home/*", "/home/*/.ssh/**", "/home/*/.gnupg/**",   # dotfiles, keys
    "/boot/**",
    "/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/local/bin", "/usr/local/sbin",
    "/var/lib", "/var/spool/cron/**",
    "/run/secrets/**", "/var/run/secrets/**",                      # container secrets
    "/dev",                                # /dev/mem, disks (/dev/shm still collapses)
    # /proc/<n> is already `<pid>` for every process; its names (mem, environ, maps)
    # must stay exact, and so must /proc's own (kcore, kallsyms).
    "/proc", "/proc/<pid>", "/proc/self", "/proc/thread-self",
    "/proc/<pid>/task/<tid>", "/proc/self/task/<tid>",
)


def _directories_regex(patterns: Sequence[str]) -> re.Pattern:
    alternatives = []
    for pattern in patterns:
        tree = pattern.endswith("/**")
        base = pattern[:-3] if tree else pattern
        parts = ("[^/]+" if part == "*" else re.escape(part) for part in base.split("/"))
        alternatives.append("/".join(parts) + ("(?:/.*)?" if tree else ""))
    return re.compile("|".join(f"(?:{a})" for a in alternatives))


_NEVER_COLLAPSE = _directories_regex(NEVER_COLLAPSE)


# -- templates ---------------------------------------------------------------------------
def normalise(path: str) -> str:
    """An absolute path with `.`, `..` and repeated slashes resolved lexically.

    Symbolic links are not followed (the watched process's view is not ours); a
    relative path is returned as it is: its `..` depends on the directory fd.
    """
    if not path.startswith("/"):
        return path
    path = posixpath.normpath(path)
    return path[1:] if path.startswith("//") else path      # POSIX keeps a leading `//`


def path_template(path: str) -> str:
    """The template a path is learned and matched by (see the module's rules)."""
    if not path.startswith("/"):
        return path                      # relative to a directory fd: kept as it is
    path = normalise(path)
    parts = path.split("/")
    in_temp = path.startswith(_TEMP_DIRS)
    in_system = path.startswith(_SYSTEM_DIRS)
    out = []
    for i, part in enumerate(parts):
        previous = out[-1] if out else ""
        if i == 2 and previous == "proc" and _DIGITS.match(part):
            out.append("<pid>")
        elif previous == "task" and len(out) == 4 and out[2] in ("<pid>", "self") \
                and _DIGITS.match(part):
            out.append("<tid>")
        elif _DIGITS.match(part):
            out.append("<n>")
        elif _HEX.match(part) and any(c.isdigit() for c in part):
            out.append("<hex>")
        else:
            if in_temp:
                part = _PY_TEMP.sub("tmp<random>", part)
                part = _RUN.sub(_random_run, part)
            if not in_system:
                part = _DIGIT_RUN.sub("<n>", part)
            out.append(part)
    return "/".join(out)


def _random_run(match: re.Match) -> str:
    run = match.group(0)
    mixed_case = any(c.islower() for c in run) and any(c.isupper() for c in run)
    if any(c.isdigit() for c in run) or mixed_case:
        return "<random>" if not run.startswith("tmp") else "tmp<random>"
    return run


def cut_key(path: str) -> str:
    """The key of a path the kernel cut: its whole components templated, the partial
    last one kept as read, and CUT. It is matched only by the same learned key."""
    if not path.startswith("/"):
        return path + CUT
    head, _, partial = path.rpartition("/")
    return path_template(head or "/").rstrip("/") + "/" + partial + CUT


def path_cut(record: dict) -> bool:
    """Whether the record's path is cut (it filled the kernel's buffer; the rest unread).

    An exec's `cut` also marks an argument that filled its buffer: its path was cut
    only if the path filled its own.
    """
    path = record.get("path") or ""
    if not record.get("cut") or not path:
        return False
    return record.get("kind") == "open" or len(os.fsencode(path)) >= TOUCH_PATH_LEN - 1


def _climbs(relative: str) -> bool:
    return ".." in relative.split("/")


def matches_template(path: str, templates: set[str] | frozenset[str], cut: bool = False
                     ) -> bool:
    """Whether `path`'s template was learned, or a learned `dir/*` holds it.

    A cut path (`cut`) matches only its learned cut key: a `dir/*` would vouch for the
    part the kernel never read. A relative path that climbs (`..`) matches only itself:
    where it lands depends on its directory fd, not on its text.
    """
    if cut:
        return cut_key(path) in templates
    template = path_template(path)
    if template in templates:
        return True
    if not template.startswith("/") and _climbs(template):
        return False
    # Each directory above it, deepest first; a relative path (openat from a dirfd) has
    # fewer, and one without a slash none.
    parent = template
    while "/" in parent:
        parent = parent.rsplit("/", 1)[0]
        if parent + "/*" in templates:
            return True
    return False


def collapse(templates: Iterable[str], limit: int) -> set[str]:
    """Templates with every directory of more than `limit` distinct names as `dir/*`,
    but those of NEVER_COLLAPSE (and cut keys, which stand for no whole name)."""
    templates = set(templates)
    for directory, names in _crowded(templates, limit).items():
        if not protected(directory):
            templates -= names
            templates.add(directory.rstrip("/") + "/*")
    return templates


def kept_exact(templates: Iterable[str], limit: int) -> int:
    """Names that would have been `dir/*` but for NEVER_COLLAPSE (for the summary)."""
    return sum(len(names) for directory, names in _crowded(set(templates), limit).items()
               if protected(directory))


def protected(directory: str) -> bool:
    """Whether a directory template is one of NEVER_COLLAPSE's."""
    return _NEVER_COLLAPSE.fullmatch(directory) is not None


def _crowded(templates: set[str], limit: int) -> dict[str, set[str]]:
    by_dir: dict[str, set[str]] = {}
    for t in templates:
        if t.startswith("/") and not t.endswith(CUT):
            by_dir.setdefault(t.rsplit("/", 1)[0] or "/", set()).add(t)
    return {d: names for d, names in by_dir.items() if len(names) > limit}


# -- peers -------------------------------------------------------------------------------
def host_networks() -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    """The subnets of the host's interfaces (from `ip -j address`; none if it fails)."""
    try:
        out = subprocess.run(["ip", "-j", "address"], capture_output=True, text=True,
                             timeout=5, check=True).stdout
        nets = []
        for link in json.loads(out):
            for addr in link.get("addr_info", []):
                nets.append(ipaddress.ip_network(f"{addr['local']}/{addr['prefixlen']}",
                                                 strict=False))
        return nets
    except (OSError, ValueError, KeyError, subprocess.SubprocessError):
        return []


def address_class(address: str, networks: Sequence) -> str:
    """`loopback`, `subnet` (one of the host's networks) or the address itself."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if ip.is_loopback or (ip.version == 6 and ip.ipv4_mapped and ip.ipv4_mapped.is_loopback):
        return "loopback"
    if any(ip.version == net.version and ip in net and not net.is_loopback for net in networks):
        return "subnet"
    return str(ip)


def peer_key(record: dict, networks: Sequence = ()) -> tuple[str, str] | None:
    """(set, key) of a net record: peers for connect/send/accept, listens for bind."""
    kind, peer = record.get("kind"), record.get("peer")
    protocol = record.get("protocol") or "?"
    if kind == "accept":
        return "peers", f"accept {protocol} any-client"
    if not isinstance(peer, dict):
        if not record.get("unreadable"):
            return None                       # no address given: nothing to learn
        return ("listens", f"{protocol} {UNREADABLE}") if kind == "bind" else (
            "peers", f"{kind} {protocol} {UNREADABLE}")
    family, address, port = peer.get("family"), str(peer.get("address")), peer.get("port") or 0
    if family == "unix":
        where = path_template(address) if address.startswith("/") else address
    else:
        where = f"{address_class(address, networks)}:{port or 'ephemeral'}"
    if kind == "bind":
        return "listens", f"{protocol} {where}"
    if kind in ("connect", "send"):
        return "peers", f"{kind} {protocol} {where}"
    return None


def item_key(record: dict, networks: Sequence = ()) -> tuple[str, str] | None:
    """(set, key) a touched record is learned and matched by; None: nothing to learn.

    Failed calls touch nothing (an exec that failed ran no program; a connect refused
    reached no peer); a non-blocking connect in progress (-EINPROGRESS) counts.
    """
    kind = record.get("kind")
    result = record.get("result")
    if kind == "exec":
        if result != 0 or not record.get("path"):
            return None
        return "programs", _path_key(record)
    if kind == "open":
        if record.get("path"):
            return "files", _path_key(record)
        # A path the kernel could not read (not paged in): learned and flagged as such,
        # so it cannot hide a file.
        return ("files", UNREADABLE) if record.get("unreadable") else None
    if kind in NET_KINDS:
        if isinstance(result, int) and result < 0 and result != -115:   # EINPROGRESS
            return None
        return peer_key(record, networks)
    return None


def _path_key(record: dict) -> str:
    return cut_key(record["path"]) if path_cut(record) else path_template(record["path"])


def process_role(watched_parent: bool | None) -> str | None:
    """A process's role from whether its parent is the same binary's (None: unknown)."""
    return None if watched_parent is None else CHILD if watched_parent else ROOT


def process_roles(starts: Iterable) -> dict[int, str]:
    """pid -> role of the processes whose thread starts (ThreadStart items or recorded
    ThreadTraces: anything with `pid` and `watched_parent`) said whose child they are."""
    roles = {}
    for start in starts:
        role = process_role(getattr(start, "watched_parent", None))
        if role:
            roles[start.pid] = role
    return roles


def with_roles(records: Iterable[dict], roles: dict[int, str]) -> Iterable[dict]:
    """Each record with its process's role (by pid) when `roles` knows it."""
    for record in records:
        role = roles.get(record.get("pid"))
        yield {**record, "role": role} if role else record


def _collapse_like(root: set[str], collapsed: frozenset[str], limit: int) -> set[str]:
    """The root's file templates collapsed on their own, and wherever the binary's were:
    a root that served a name from a web root served file by file by its children may
    serve another."""
    root = collapse(root, limit)
    for wildcard in (t for t in collapsed if t.endswith("/*")):
        directory = wildcard[:-2]
        inside = {t for t in root if t.rsplit("/", 1)[0] == directory}
        if inside:
            root = (root - inside) | {wildcard}
    return root


# -- the estimator -----------------------------------------------------------------------
class TouchedSets(Estimator):
    """Learned sets of what a binary touches, and which records are new to them.

    fit(X): X is a sequence of touched records (dicts with the dataset record's fields:
    kind, path, peer, protocol, result, ts_ns). `networks` are the host's subnets
    (None: asked of the host at fit). The allow-lists (`allow_files` fnmatch patterns,
    `allow_peers` ADDR[:PORT] prefixes, `allow_execs` paths or patterns) are parameters:
    a user accepts an item without refitting.
    """

    def __init__(self, collapse_after: int = 32, networks: tuple | None = None,
                 allow_files: tuple = (), allow_peers: tuple = (),
                 allow_execs: tuple = ()) -> None:
        self.collapse_after = collapse_after
        self.networks = networks
        self.allow_files = allow_files
        self.allow_peers = allow_peers
        self.allow_execs = allow_execs

    def fit(self, X: Iterable[dict], y=None, span_ns: tuple[int, int] | None = None
            ) -> TouchedSets:
        """Learn the sets from touched records (any iterable, read once).

        span_ns: the training's (first, last) time, when X holds only each key's first
        record (FirstSeen); by default the span of X's own times.
        """
        networks = self._networks()
        self.networks_ = tuple(str(n) for n in networks)
        first_seen = FirstSeen(networks)
        first_seen.add(X)
        learned: dict[str, set[str]] = {name: set() for name in SETS}
        for name, key in first_seen.keys:
            learned[name].add(key)
        self.kept_exact_ = kept_exact(learned["files"], self.collapse_after)
        learned["files"] = collapse(learned["files"], self.collapse_after)
        self.sets_ = {name: frozenset(keys) for name, keys in learned.items()}
        self.root_sets_ = self._root_sets(first_seen)
        self.records_ = first_seen.records
        start, end = span_ns or first_seen.span
        self.novelty_curve_ = novelty_per_minute(first_seen.times, start, end)
        # Per set as well: a database still finding new files while its peers are settled
        # needs a longer training for its files alone.
        self.novelty_by_set_ = {
            name: novelty_per_minute(first_seen.times_of(name), start, end) for name in SETS}
        return self

    def _root_sets(self, first_seen: FirstSeen) -> dict[str, frozenset] | None:
        """What the root process touched, when the records said roles (else None)."""
        if not first_seen.roles:
            return None
        root: dict[str, set[str]] = {name: set() for name in SETS}
        for name, key in first_seen.root_keys:
            root[name].add(key)
        root["files"] = _collapse_like(root["files"], self.sets_["files"], self.collapse_after)
        return {name: frozenset(keys) for name, keys in root.items()}

    def _networks(self) -> list:
        if self.networks is not None:
            return [ipaddress.ip_network(n, strict=False) for n in self.networks]
        return host_networks()

    def new_items(self, X: Iterable[dict]) -> list[tuple[str, str, dict]]:
        """(set, key, record) of each record whose key is new and not allowed, once per key."""
        networks = self._parsed_networks()
        seen: set[tuple[str, str]] = set()
        out = []
        for record in X:
            key = item_key(record, networks)
            if key is None or key in seen or self.known(key, record):
                continue
            seen.add(key)
            out.append((key[0], key[1], record))
        return out

    def _parsed_networks(self) -> list:
        # Parsed once per fitted object: the watcher asks for every record it sees.
        cached = self.__dict__.get("_networks_cache")
        if cached is None or cached[0] is not self.networks_:
            cached = (self.networks_,
                      [ipaddress.ip_network(n, strict=False) for n in self.networks_])
            self.__dict__["_networks_cache"] = cached
        return cached[1]

    def known(self, key: tuple[str, str], record: dict) -> bool:
        """Whether the item was learned (by the record's role, if it has one) or is allowed."""
        sets = self._sets_of(record.get("role"))
        name, value = key
        if value == UNREADABLE:
            return value in sets[name]
        if name == "files":
            cut = path_cut(record)
            return matches_template(record["path"], sets["files"], cut) or \
                _path_allowed(record["path"], self.allow_files, cut)
        if value in sets[name]:
            return True
        if name == "programs":
            return _path_allowed(record["path"], self.allow_execs, path_cut(record))
        return _peer_allowed(record, self.allow_peers)

    def _sets_of(self, role: str | None) -> dict[str, frozenset]:
        root = getattr(self, "root_sets_", None)       # older profiles have none
        return root if role == ROOT and root is not None else self.sets_

    def known_to_children(self, key: tuple[str, str], record: dict) -> bool:
        """Whether a root process's new item is one the binary's children touched."""
        return record.get("role") == ROOT and self.known(key, {**record, "role": None})


class FirstSeen:
    """The first record of each key and the span of all records: what fitting needs.

    Memory grows with the distinct keys, not with the records, so a live training of
    hours keeps only a few thousand records.
    """

    def __init__(self, networks: Sequence = ()) -> None:
        self._networks = list(networks)
        self._first: dict[tuple[str, str], dict] = {}
        self._root_first: dict[tuple[str, str], dict] = {}   # keys the root process touched
        self.roles: set[str] = set()                         # the roles records carried
        self.records = 0
        self.span = (0, 0)
        # Whether the source captured touched records at all: then no record means the
        # binary touched nothing, and everything it touches later is new.
        self.captured = False

    def mark_captured(self) -> None:
        """The source captures touched records (a live training, a recent recording)."""
        self.captured = True

    def add(self, records: Iterable[dict]) -> None:
        start, end = self.span
        for record in records:
            self.captured = True
            self.records += 1
            ts = int(record.get("ts_ns") or 0)
            if ts:
                start, end = min(start or ts, ts), max(end, ts)
            key = item_key(record, self._networks)
            if key is None:
                continue
            if key not in self._first:
                self._first[key] = record
            role = record.get("role")
            if role:
                self.roles.add(role)
                if role == ROOT and key not in self._root_first:
                    self._root_first[key] = record
        self.span = (start, end)

    @property
    def keys(self) -> list[tuple[str, str]]:
        return list(self._first)

    @property
    def root_keys(self) -> list[tuple[str, str]]:
        return list(self._root_first)

    @property
    def times(self) -> list[int]:
        return [int(r.get("ts_ns") or 0) for r in self._first.values()]

    def times_of(self, set_name: str) -> list[int]:
        """When each key of one set was first seen."""
        return [int(r.get("ts_ns") or 0) for (name, _), r in self._first.items()
                if name == set_name]

    def first_records(self) -> list[dict]:
        """Each key's first record, then the root's first of keys a child touched first:
        what a fit needs to learn the same sets and roles again."""
        firsts = list(self._first.values())
        seen = {id(r) for r in firsts}
        return firsts + [r for r in self._root_first.values() if id(r) not in seen]


def extend_sets(sets: TouchedSets, previous: TouchedSets | None) -> TouchedSets:
    """`sets` with everything `previous` learned (and its allow-lists) added."""
    if previous is None:
        return sets
    # A training that said no roles vouches for the root with everything it learned.
    new_root, old_root = (getattr(s, "root_sets_", None) for s in (sets, previous))
    if new_root is not None or old_root is not None:
        new_root = new_root if new_root is not None else sets.sets_
        old_root = old_root if old_root is not None else previous.sets_
        sets.root_sets_ = {name: new_root.get(name, frozenset()) | old_root.get(name, frozenset())
                           for name in SETS}
    for name in SETS:
        sets.sets_[name] = sets.sets_[name] | previous.sets_.get(name, frozenset())
    sets.set_params(allow_files=previous.allow_files, allow_peers=previous.allow_peers,
                    allow_execs=previous.allow_execs)
    return sets


def allow(sets: TouchedSets, *, files: Sequence[str] = (), peers: Sequence[str] = (),
          execs: Sequence[str] = ()) -> TouchedSets:
    """`sets` with these patterns added to its allow-lists (checked, duplicates dropped)."""
    for pattern in (*files, *execs):
        if not pattern.startswith("/") and not pattern.startswith("*"):
            raise UserError(f"'{printable(pattern)}' is not an absolute path or pattern; "
                            "give one starting with / (or *).")
    for pattern in peers:
        address, _ = split_peer_pattern(pattern)
        try:
            ipaddress.ip_address(address)
        except ValueError:
            if not address.startswith("/") and not address.startswith("@"):
                raise UserError(f"'{printable(pattern)}' is not ADDR[:PORT], [ADDR6][:PORT] "
                                "or a unix socket path; e.g. 10.0.0.5:5432.") from None

    def merged(old: tuple, new: Sequence[str]) -> tuple:
        return tuple(dict.fromkeys([*old, *new]))

    return sets.set_params(allow_files=merged(sets.allow_files, files),
                           allow_peers=merged(sets.allow_peers, peers),
                           allow_execs=merged(sets.allow_execs, execs))


def touched_meta(sets: TouchedSets) -> dict:
    """Header fields of fitted sets (for `profiles show` without unpickling)."""
    return {
        "records": sets.records_,
        "sets": {name: sorted(keys) for name, keys in sets.sets_.items()},
        # What the binary's first process touched itself (None: the training said no roles).
        "root_sets": ({name: sorted(keys) for name, keys in root.items()}
                      if (root := getattr(sets, "root_sets_", None)) is not None else None),
        "novelty_per_minute": list(sets.novelty_curve_),
        "novelty_per_minute_by_set": getattr(sets, "novelty_by_set_", {}),  # older: none
        "networks": list(sets.networks_),
        "kept_exact": getattr(sets, "kept_exact_", 0),     # older profiles lack it
        # Pooled from a fleet (sysgram.fleet): how many hosts, and how many hosts touched
        # each item (before file templates were drawn). None: one host's training.
        "hosts": getattr(sets, "hosts_", None),
        "item_hosts": getattr(sets, "item_hosts_", None),
        "allow": {"files": list(sets.allow_files), "peers": list(sets.allow_peers),
                  "execs": list(sets.allow_execs)},
    }


def _path_allowed(path: str, patterns: Sequence[str], cut: bool) -> bool:
    # Patterns match the normalised path (`/srv/www/*` must not allow
    # `/srv/www/../../etc/shadow`); a cut path only a pattern that is its very text, as a
    # wildcard would cover the part the kernel never read.
    if cut:
        return path in patterns
    path = normalise(path)
    return any(fnmatch.fnmatchcase(path, p) for p in patterns)


def _peer_allowed(record: dict, patterns: Sequence[str]) -> bool:
    peer = record.get("peer")
    if not isinstance(peer, dict) or not patterns:
        return False
    address, port = str(peer.get("address")), int(peer.get("port") or 0)
    for pattern in patterns:
        want_addr, want_port = split_peer_pattern(pattern)
        if address == want_addr and (want_port is None or want_port == port):
            return True
    return False


def split_peer_pattern(pattern: str) -> tuple[str, int | None]:
    """ADDR, [ADDR6], ADDR:PORT or [ADDR6]:PORT -> (address, port or None)."""
    if pattern.startswith("["):
        address, _, rest = pattern[1:].partition("]")
        return address, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else None
    if pattern.count(":") == 1:
        address, port = pattern.split(":")
        if port.isdigit():
            return address, int(port)
    return pattern, None


def novelty_per_minute(first_seen_ns: Sequence[int], start_ns: int, end_ns: int) -> list[int]:
    """New keys in each minute from `start_ns` to `end_ns`, from when each was first seen.

    A curve that ends in zeros says the sets stopped growing; keys without a time (an
    imported corpus) are not placed on it.
    """
    stamps = np.array([t for t in first_seen_ns if t], dtype=np.int64)
    if not start_ns or end_ns < start_ns:
        return []
    minutes = int((end_ns - start_ns) // 60_000_000_000) + 1
    index = np.clip((stamps - start_ns) // 60_000_000_000, 0, minutes - 1)
    return np.bincount(index, minlength=minutes).astype(int).tolist()


def fit_touched(first_seen: FirstSeen | None, prior: TouchedSets | None = None
                ) -> TouchedSets | None:
    """The touched sets of a training: from its records, extended by `prior` (--append).

    A training that captured touched records and got none learns empty sets (a database
    under a steady load opens no file and accepts no connection: the first file it opens
    after training is news); one that could not capture them (an imported corpus, an old
    recording) learns none, and watch only lists what is touched."""
    if first_seen is None or not (first_seen.records or first_seen.captured):
        return prior
    sets = TouchedSets().fit(first_seen.first_records(), span_ns=first_seen.span)
    sets.records_ = first_seen.records
    return extend_sets(sets, prior)
