"""The suite's servers, by name. Each module defines one class that conforms to
`benchmarks.scenarios.servers.base.Server`; a module is imported only when its server
is asked for."""

from __future__ import annotations

import importlib

from benchmarks.scenarios.servers.base import Server

# name -> "module:Class" under this package, in the order the suite runs them.
_SERVERS = {"nginx": "nginx:Nginx", "apache": "apache:Apache", "sshd": "sshd:Sshd",
            "mariadb": "mariadb:MariaDB", "gunicorn": "wsgi:Gunicorn",
            "memcached": "memcached:Memcached"}


def server_names() -> list[str]:
    return list(_SERVERS)


def make_server(name: str) -> Server:
    module, _, cls = _SERVERS[name].partition(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)()
