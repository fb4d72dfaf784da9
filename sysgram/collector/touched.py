"""Decode the `touched` ring buffer (sysgram/bpf/touched.h) into Touched items.

Records come one per call the kernel program read arguments of: a file opened, a
program executed, a socket created, a peer connected to, accepted from, bound or sent
to. Paths stay faithful: bytes the kernel read are kept as text with surrogate escapes
(`os.fsencode` gives them back), and a path that filled its buffer is marked `cut`.
The protocol of a net call comes from the socket's type, which the process's earlier
socket()/accept() told (`SocketTypes`); a socket created before tracing began is unknown.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket

import numpy as np

from sysgram.bpf.sizes import TOUCH_ADDR_LEN, TOUCH_ARG_LEN, TOUCH_ARGS, TOUCH_PATH_LEN
from sysgram.collector.items import Peer, Touched

# Record kinds and flags (touched.h).
OPEN, EXEC, CONNECT, ACCEPT, BIND, SEND, SOCKET = 1, 2, 3, 4, 5, 6, 7
KIND_NAMES = {OPEN: "open", EXEC: "exec", CONNECT: "connect", ACCEPT: "accept", BIND: "bind",
              SEND: "send", SOCKET: "socket"}
F_PATH_CUT, F_ARG_CUT, F_MORE_ARGS, F_UNREADABLE = 1, 2, 4, 8

HDR = np.dtype([
    ("ts", "<u8"), ("tid", "<u4"), ("tgid", "<u4"), ("kind", "<u2"), ("nr", "<u2"),
    ("ret", "<i4"), ("flags", "<u4"), ("addr_len", "<u4"), ("arg0", "<i8"), ("arg1", "<i8"),
])
OPEN_REC = np.dtype([("hdr", HDR), ("path", f"S{TOUCH_PATH_LEN}")])
EXEC_REC = np.dtype([("hdr", HDR), ("path", f"S{TOUCH_PATH_LEN}"),
                     ("argv", f"S{TOUCH_ARG_LEN}", (TOUCH_ARGS,))])
NET_REC = np.dtype([("hdr", HDR), ("addr", "u1", (TOUCH_ADDR_LEN,))])
_LAYOUT = {OPEN: OPEN_REC, EXEC: EXEC_REC, CONNECT: NET_REC, ACCEPT: NET_REC, BIND: NET_REC,
           SEND: NET_REC, SOCKET: NET_REC}
_KIND_OFFSET = 16              # of `kind` in the header

_SOCK_TYPE_MASK = 0xF          # SOCK_NONBLOCK / SOCK_CLOEXEC live in the higher bits
_PROTOCOLS = {
    (socket.AF_INET, socket.SOCK_STREAM): "tcp", (socket.AF_INET6, socket.SOCK_STREAM): "tcp",
    (socket.AF_INET, socket.SOCK_DGRAM): "udp", (socket.AF_INET6, socket.SOCK_DGRAM): "udp",
    (socket.AF_UNIX, socket.SOCK_STREAM): "unix-stream",
    (socket.AF_UNIX, socket.SOCK_DGRAM): "unix-dgram",
    (socket.AF_UNIX, socket.SOCK_SEQPACKET): "unix-seqpacket",
}


def text(raw: bytes) -> str:
    """Kernel bytes up to the first NUL, as faithful text (surrogate escapes)."""
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def record_kind(record: bytes) -> int:
    if len(record) < HDR.itemsize:
        return 0
    return int.from_bytes(record[_KIND_OFFSET:_KIND_OFFSET + 2], "little")


def decode_peer(addr: np.ndarray, length: int) -> Peer | None:
    """A sockaddr (raw bytes, `length` as the caller gave it) -> a Peer, or None."""
    raw = bytes(addr[: max(0, min(length, TOUCH_ADDR_LEN))])
    if len(raw) < 2:
        return None
    family = int.from_bytes(raw[:2], "little")
    if family == socket.AF_INET and len(raw) >= 8:
        return Peer("ipv4", str(ipaddress.IPv4Address(raw[4:8])), int.from_bytes(raw[2:4], "big"))
    if family == socket.AF_INET6 and len(raw) >= 24:
        return Peer("ipv6", str(ipaddress.IPv6Address(raw[8:24])), int.from_bytes(raw[2:4], "big"))
    if family == socket.AF_UNIX:
        path = raw[2:]
        if path[:1] == b"\0":                  # abstract namespace: no file, shown as @name
            return Peer("unix", "@" + path[1:].rstrip(b"\0").decode("utf-8", "surrogateescape"), 0)
        return Peer("unix", text(path), 0)
    return Peer(f"family-{family}", raw[2:].hex(), 0)


class SocketTypes:
    """Each process's socket types by fd, from the socket() and accept() records seen."""

    def __init__(self) -> None:
        self._types: dict[int, dict[int, tuple[int, int]]] = {}

    def protocol(self, pid: int, fd: int) -> str | None:
        known = self._types.get(pid, {}).get(fd)
        return _PROTOCOLS.get(known) if known else None

    def created(self, pid: int, fd: int, domain: int, sock_type: int) -> None:
        self._types.setdefault(pid, {})[fd] = (domain, sock_type & _SOCK_TYPE_MASK)

    def accepted(self, pid: int, listening_fd: int, fd: int) -> None:
        known = self._types.get(pid, {}).get(listening_fd)
        if known:
            self._types[pid][fd] = known

    def forget(self, pid: int) -> None:
        self._types.pop(pid, None)

    def __len__(self) -> int:
        return sum(len(fds) for fds in self._types.values())


def decode_all(records: list[bytes], sockets: SocketTypes) -> list[Touched]:
    """A round's records -> Touched items (opens, the bulk, decoded as one array).

    Net records go one by one, in order: a connect's protocol depends on the socket()
    before it. The items are ordered later, by time, with the syscalls around them.
    """
    opens: list[bytes] = []
    items: list[Touched] = []
    for record in records:
        if record_kind(record) == OPEN and len(record) == OPEN_REC.itemsize:
            opens.append(record)
        else:
            item = decode(record, sockets)
            if item is not None:
                items.append(item)
    if opens:
        items += _decode_opens(np.frombuffer(b"".join(opens), dtype=OPEN_REC))
    return items


def _decode_opens(recs: np.ndarray) -> list[Touched]:
    hdr = recs["hdr"]
    columns = zip(hdr["tid"].tolist(), hdr["tgid"].tolist(), hdr["ts"].tolist(),
                  hdr["nr"].tolist(), hdr["flags"].tolist(), hdr["arg0"].tolist(),
                  hdr["arg1"].tolist(), recs["path"].tolist(), strict=True)
    return [Touched(tid=tid, pid=pid, ts_ns=ts, kind="open", syscall=nr, path=text(path),
                    dirfd=dirfd, open_flags=open_flags, cut=bool(flags & F_PATH_CUT),
                    unreadable=bool(flags & F_UNREADABLE))
            for tid, pid, ts, nr, flags, dirfd, open_flags, path in columns]


def decode(record: bytes, sockets: SocketTypes) -> Touched | None:
    """One ring-buffer record -> a Touched item (None for a record of an unknown kind)."""
    kind = record_kind(record)
    layout = _LAYOUT.get(kind)
    if layout is None or len(record) < layout.itemsize:
        return None
    rec = np.frombuffer(record, dtype=layout, count=1)[0]
    hdr = rec["hdr"]
    tid, pid, flags = int(hdr["tid"]), int(hdr["tgid"]), int(hdr["flags"])
    arg0, arg1, ret = int(hdr["arg0"]), int(hdr["arg1"]), int(hdr["ret"])
    common = dict(tid=tid, pid=pid, ts_ns=int(hdr["ts"]), kind=KIND_NAMES[kind],
                  syscall=int(hdr["nr"]), unreadable=bool(flags & F_UNREADABLE))
    if kind == OPEN:
        return Touched(**common, path=text(rec["path"]), dirfd=arg0, open_flags=arg1,
                       cut=bool(flags & F_PATH_CUT))
    if kind == EXEC:
        count = max(0, min(arg1, TOUCH_ARGS))        # the entries the kernel read
        argv = tuple(text(a) for a in rec["argv"][:count])
        return Touched(**common, path=text(rec["path"]), dirfd=arg0, result=ret,
                       argv=argv, cut=bool(flags & (F_PATH_CUT | F_ARG_CUT)),
                       more_args=bool(flags & F_MORE_ARGS))
    if kind == SOCKET:
        if ret >= 0:
            sockets.created(pid, ret, arg0, arg1)
        return None                                # only the protocols of later calls need it
    if kind == ACCEPT and ret >= 0:
        sockets.accepted(pid, arg0, ret)
    peer = decode_peer(rec["addr"], int(hdr["addr_len"]))
    result = ret if kind in (CONNECT, ACCEPT) else None
    return Touched(**common, fd=arg0, result=result, peer=peer,
                   protocol=sockets.protocol(pid, arg0))


def as_fields(item: Touched) -> dict:
    """A Touched item as plain fields (the peer as a dict), e.g. for a dataset record."""
    fields = dataclasses.asdict(item)
    fields["argv"] = list(item.argv)
    return fields


def touched_records(items) -> list[dict]:
    """The Touched items of a drain as plain records (the fields a dataset keeps)."""
    return [as_fields(i) for i in items if isinstance(i, Touched)]
