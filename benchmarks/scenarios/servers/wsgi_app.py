"""A small inventory web app (plain WSGI, run under gunicorn by wsgi.py) with the bugs of
real applications:

- `/api/lookup?host=H` resolves a host with `getent hosts H` through a shell: command
  injection (normal clients ask for localhost names, so the app starts a shell normally);
- `/static/NAME` joins NAME to its directory unchecked: path traversal;
- `/api/preview?url=U` fetches a link preview with urllib: SSRF (normal clients never
  use it);
- `/api/cart` restores the `cart` cookie with pickle: unsafe deserialisation.

Every response names the worker that served it (`X-Worker: pid`), so the suite knows
which process an attack hit. Configuration through the environment: SG_APP_ROOT.
"""

from __future__ import annotations

import base64
import json
import os
import pickle
import subprocess
import urllib.request
from http.cookies import SimpleCookie
from urllib.parse import parse_qs

ROOT = os.environ.get("SG_APP_ROOT", ".")
ITEMS = [{"id": i, "name": f"part-{i}", "stock": (i * 37) % 101} for i in range(1, 41)]


def _reply(start_response, status: str, body: bytes, ctype: str = "application/json"):
    start_response(status, [("Content-Type", ctype), ("Content-Length", str(len(body))),
                            ("X-Worker", str(os.getpid()))])
    return [body]


def app(environ, start_response):
    path = environ.get("PATH_INFO", "/")
    query = {k: v[0] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    if path == "/":
        return _reply(start_response, "200 OK", b"<h1>inventory</h1>", "text/html")
    if path == "/api/items":
        wanted = query.get("id")
        items = [i for i in ITEMS if wanted is None or str(i["id"]) == wanted]
        return _reply(start_response, "200 OK", json.dumps(items).encode())
    if path.startswith("/static/"):
        try:
            with open(os.path.join(ROOT, "static", path[len("/static/"):]), "rb") as f:
                return _reply(start_response, "200 OK", f.read(), "application/octet-stream")
        except OSError:
            return _reply(start_response, "404 Not Found", b"{}")
    if path == "/api/lookup":
        out = subprocess.run(f"getent hosts {query.get('host', 'localhost')}", shell=True,
                             capture_output=True, timeout=10).stdout
        return _reply(start_response, "200 OK", json.dumps({"hosts": out.decode()}).encode())
    if path == "/api/preview":
        with urllib.request.urlopen(query["url"], timeout=5) as r:
            return _reply(start_response, "200 OK", r.read(256))
    if path == "/api/cart":
        cookie = SimpleCookie(environ.get("HTTP_COOKIE", ""))
        cart = pickle.loads(base64.b64decode(cookie["cart"].value)) if "cart" in cookie else {}
        return _reply(start_response, "200 OK", json.dumps({"items": len(cart)}).encode())
    return _reply(start_response, "404 Not Found", b"{}")
