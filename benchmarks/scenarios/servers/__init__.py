"""The suite's servers, by name. Each module defines one class that conforms to
`benchmarks.scenarios.servers.base.Server`."""

from __future__ import annotations

from benchmarks.scenarios.servers.base import Server


def server_names() -> list[str]:
    return list(_FACTORIES)


def make_server(name: str) -> Server:
    return _FACTORIES[name]()


def _nginx() -> Server:
    from benchmarks.scenarios.servers.nginx import Nginx
    return Nginx()


def _apache() -> Server:
    from benchmarks.scenarios.servers.apache import Apache
    return Apache()


def _sshd() -> Server:
    from benchmarks.scenarios.servers.sshd import Sshd
    return Sshd()


def _mariadb() -> Server:
    from benchmarks.scenarios.servers.mariadb import MariaDB
    return MariaDB()


def _gunicorn() -> Server:
    from benchmarks.scenarios.servers.wsgi import Gunicorn
    return Gunicorn()


def _memcached() -> Server:
    from benchmarks.scenarios.servers.memcached import Memcached
    return Memcached()


_FACTORIES = {"nginx": _nginx, "apache": _apache, "sshd": _sshd, "mariadb": _mariadb,
              "gunicorn": _gunicorn, "memcached": _memcached}
