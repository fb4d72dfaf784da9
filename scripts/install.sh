#!/usr/bin/env bash
# sysgram's one install entry point (called by `make install`, `make test`, `make demo`).
# On a fresh Debian/Ubuntu machine as root it installs:
#   - bcc from the distribution (python3-bpfcc) and libseccomp's bindings (python3-seccomp),
#   - kernel headers: the running kernel's package where one exists, else the
#     distribution's generic headers linked where bcc looks (/lib/modules/$(uname -r)),
#   - a C compiler (tests build small workloads), tracefs mounted,
#   - Apache httpd and ab: the scenario suite's CI part (tests/test_scenarios_kernel.py)
#     attacks a real Apache under ab (the full suite installs its other servers itself),
#   - a virtualenv at .venv made from the distribution's python3 with
#     --system-site-packages, so it imports both bcc and the PyPI dependencies.
# It is idempotent and quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'install: %s\n' "$*"; }
need_root() {
    if [ "$(id -u)" -ne 0 ]; then
        say "must run as root (it installs packages and kernel headers): run 'sudo make install'."
        exit 2
    fi
}

APT_PACKAGES="python3 python3-venv python3-bpfcc python3-seccomp gcc make libc6-dev apache2 apache2-utils"
KREL="$(uname -r)"

apt_install() {
    export DEBIAN_FRONTEND=noninteractive
    if [ ! -f /var/lib/apt/lists/lock ] || [ -z "$(ls /var/lib/apt/lists/ 2>/dev/null | grep -v lock | head -1)" ] \
        || [ -n "${SYSGRAM_APT_UPDATE:-}" ]; then
        apt-get update -qq
    fi
    # shellcheck disable=SC2086
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null || {
        apt-get update -qq && apt-get install -y -qq --no-install-recommends "$@" >/dev/null
    }
}

missing_packages() {
    local p out=""
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || out="$out $p"
    done
    echo "$out"
}

install_packages() {
    local missing
    missing="$(missing_packages $APT_PACKAGES)"
    if [ -n "$missing" ]; then
        say "installing distribution packages:$missing"
        # shellcheck disable=SC2086
        apt_install $missing
    fi
}

headers_ok() {
    [ -e "/lib/modules/$KREL/build/include/linux/kconfig.h" ] \
        || [ -e "/lib/modules/$KREL/source/include/linux/kconfig.h" ]
}

install_headers() {
    if headers_ok; then return 0; fi
    export DEBIAN_FRONTEND=noninteractive
    if apt-cache show "linux-headers-$KREL" >/dev/null 2>&1; then
        say "installing linux-headers-$KREL (headers for the running kernel)"
        apt_install "linux-headers-$KREL"
        return 0
    fi
    local arch generic build source
    arch="$(dpkg --print-architecture)"
    generic="linux-headers-$arch"
    say "no headers are packaged for the running kernel $KREL;"
    say "falling back to the distribution's generic headers ($generic)."
    apt_install "$generic"
    # The generic package ships /usr/lib/modules/<its version>/{build,source}: link them
    # where bcc looks for the running kernel. bcc needs headers only to compile its
    # programs; sysgram reads no kernel structures (tracepoint formats come from tracefs),
    # so a different minor version is fine.
    build="$(ls -d /usr/src/linux-headers-*-"$arch" 2>/dev/null | sort -V | tail -1)"
    source="${build%-"$arch"}-common"
    [ -d "$source" ] || source="$build"
    if [ -z "$build" ]; then
        say "could not find the generic headers after installing $generic; install kernel headers by hand."
        exit 2
    fi
    mkdir -p "/lib/modules/$KREL"
    ln -sfn "$build" "/lib/modules/$KREL/build"
    ln -sfn "$source" "/lib/modules/$KREL/source"
    say "linked /lib/modules/$KREL/build -> $build and source -> $source"
    say "(sysgram doctor checks that bcc compiles and loads with them)."
}

mount_tracefs() {
    if [ ! -d /sys/kernel/tracing/events ]; then
        mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null \
            && say "mounted tracefs at /sys/kernel/tracing" \
            || say "could not mount tracefs; 'sysgram doctor' explains."
    fi
}

make_venv() {
    local stamp=.venv/.sysgram-install-stamp want
    want="$(cat pyproject.toml scripts/install.sh | sha256sum | cut -d' ' -f1)"
    if [ -x .venv/bin/python ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
        return 0
    fi
    if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import bcc' 2>/dev/null; then
        rm -rf .venv
        say "creating .venv from /usr/bin/python3 (with system site-packages, for bcc)"
        /usr/bin/python3 -m venv --system-site-packages .venv
    fi
    say "installing Python dependencies into .venv"
    .venv/bin/pip install -q --disable-pip-version-check -e '.[dev]'
    .venv/bin/python -c 'import bcc, seccomp, numpy, sklearn' \
        || { say ".venv cannot import bcc/seccomp/numpy/sklearn; see the messages above."; exit 2; }
    echo "$want" > "$stamp"
}

need_root
install_packages
install_headers
mount_tracefs
make_venv
say "ready: .venv/bin/sysgram"
