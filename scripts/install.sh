#!/usr/bin/env bash
# Installs what cdc needs on a fresh Debian machine: MariaDB (when mariadbd is missing),
# a virtualenv in .venv with cdc; with --test also the test tools, headless Chromium, and
# Node with the packages of the Node example.
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

have() { command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ]; }

packages=()
have mariadbd || packages+=(mariadb-server)
# The page's tests drive Debian's Chromium headless (never a browser download).
if [ "$want_test" = 1 ] && [ ! -x /usr/bin/chromium ]; then packages+=(chromium); fi
# Playwright's bundled Node driver links libatomic.so.1, which nothing else pulls in on a
# minimal Debian (there it comes only with gcc, i.e. python3-pip's recommended build-essential).
if [ "$want_test" = 1 ] && ! /sbin/ldconfig -p 2>/dev/null | grep -q 'libatomic\.so\.1 '; then
    packages+=(libatomic1)
fi
# docker-compose.yml is validated by Debian's docker-compose (`config` needs no engine;
# installed without its recommended docker.io, which would bring an engine).
bare=()
if [ "$want_test" = 1 ] && ! have docker-compose; then bare+=(docker-compose); fi
# The systemd units are checked with `systemd-analyze verify`.
if [ "$want_test" = 1 ] && ! have systemd-analyze; then bare+=(systemd); fi
# The fan-out tests start throwaway redis-servers on free ports.
if [ "$want_test" = 1 ] && [ ! -x /usr/bin/redis-server ]; then packages+=(redis-server); fi
# The Node attribution example (examples/node-mysql2) and its test.
if [ "$want_test" = 1 ] && ! have node; then packages+=(nodejs npm); fi
if [ "${#packages[@]}" -gt 0 ] || [ "${#bare[@]}" -gt 0 ]; then
    if [ "$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi
    echo "installing Debian packages: ${packages[*]} ${bare[*]}"
    $SUDO apt-get update -qq
    if [ "${#packages[@]}" -gt 0 ]; then
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${packages[@]}" >/dev/null
    fi
    if [ "${#bare[@]}" -gt 0 ]; then
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
            "${bare[@]}" >/dev/null
    fi
    # The Debian package starts its own server; ours are throwaway ones on free ports.
fi

[ -x .venv/bin/python ] || python3 -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
if [ "$want_test" = 1 ]; then
    python -m pip install -q -e '.[test]'
else
    python -m pip install -q -e .
fi
if [ "$want_test" = 1 ]; then
    # Again only when the lock file changed since the last install (npm ci starts from
    # nothing each time, and needs the registry).
    node_example=examples/node-mysql2
    if [ ! -f "$node_example/node_modules/.package-lock.json" ] ||
        [ "$node_example/package-lock.json" -nt "$node_example/node_modules/.package-lock.json" ]; then
        (cd "$node_example" && npm ci --no-audit --no-fund --loglevel=error)
    fi
fi
