"""The Debian packages the chosen servers need: checked with dpkg, installed with apt-get
when missing (root). `scripts/install.sh` installs those of the CI server (Apache:
apache2, apache2-utils) for `make test`; the full suite installs the rest on first run."""

from __future__ import annotations

import os
import subprocess


def missing(packages: list[str]) -> list[str]:
    out = []
    for p in packages:
        done = subprocess.run(["dpkg-query", "-W", "-f=${Status}", p], capture_output=True,
                              text=True)
        if "install ok installed" not in done.stdout:
            out.append(p)
    return out


def ensure(packages: list[str]) -> list[str]:
    """Install what is missing; returns what was installed."""
    needed = missing(packages)
    if needed:
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *needed]
        if subprocess.run(cmd, env=env, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, capture_output=True)
            subprocess.run(cmd, env=env, check=True, capture_output=True)
    return needed
