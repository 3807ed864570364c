#!/bin/bash
# Install stepd as a systemd service (run as root from the source tree, or `make install`):
#   /opt/stepd/venv                          the program, in its own virtualenv
#   /etc/systemd/system/stepd.service        the unit
#   /etc/stepd/stepd.toml, classroom.asl.yaml the configuration (kept if already there)
#   /etc/credstore/stepd.signing_secret      a new Standard Webhooks secret (kept if there)
# DESTDIR=/some/folder stages the same layout under that folder instead, for a package or
# a container image: nothing outside it is touched and systemd is not told.
# NETWORK=loopback|any|"ADDRESSES" chooses which addresses the service may reach
# (systemd/network.sh); unset, the choice of an earlier install is kept (loopback at first).
set -euo pipefail

SRC=$(cd "$(dirname "$0")/.." && pwd)
DESTDIR=${DESTDIR:-}
# The system interpreter: the sandbox hides /home and /root, and the venv links to it.
PYTHON=${PYTHON:-/usr/bin/python3}
PREFIX=/opt/stepd
VENV=$PREFIX/venv
CONFDIR=/etc/stepd
CREDSTORE=/etc/credstore
UNITDIR=/etc/systemd/system

say() { printf 'stepd install: %s\n' "$*"; }

if [ -z "$DESTDIR" ] && [ "$(id -u)" != 0 ]; then
    say "run as root (or set DESTDIR to stage the files in a folder)" >&2
    exit 1
fi

if ! "$PYTHON" -c 'import ensurepip' 2>/dev/null && command -v apt-get >/dev/null; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv
fi

# The program: a wheel built from a clean copy of the sources, into the virtualenv.
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
mkdir "$stage/src"
tar -C "$SRC" --exclude='*.egg-info' --exclude=__pycache__ -cf - pyproject.toml README.md daemon \
    | tar -C "$stage/src" -xf -
install -d -m 0755 "$DESTDIR$PREFIX"
"$PYTHON" -m venv "$DESTDIR$VENV"
pip=("$DESTDIR$VENV/bin/python" -m pip -qq)
"${pip[@]}" wheel --no-deps --wheel-dir "$stage/dist" "$stage/src"
wheel=$(echo "$stage"/dist/stepd-*.whl)
"${pip[@]}" install "$wheel"                                 # with its pinned dependencies
"${pip[@]}" install --force-reinstall --no-deps "$wheel"     # this build, even at the same version
if [ -n "$DESTDIR" ]; then
    # Scripts name their interpreter by absolute path: make it the installed one.
    grep -rlIZ -- "$DESTDIR$VENV" "$DESTDIR$VENV/bin" "$DESTDIR$VENV/pyvenv.cfg" \
        | xargs -0 -r sed -i "s|$DESTDIR$VENV|$VENV|g"
fi
install -m 0644 "$SRC/systemd/README.md" "$DESTDIR$PREFIX/README.md"
say "program: $VENV ($("$DESTDIR$VENV/bin/python" -m stepd --version))"

# The unit, and the addresses it may reach.
install -D -m 0644 "$SRC/systemd/stepd.service" "$DESTDIR$UNITDIR/stepd.service"
say "unit: $UNITDIR/stepd.service"
if [ -n "${NETWORK:-}" ]; then
    say "$(bash "$SRC/systemd/network.sh" "$NETWORK" "$DESTDIR$UNITDIR/stepd.service.d")"
elif [ -e "$DESTDIR$UNITDIR/stepd.service.d/network.conf" ]; then
    say "network: kept $UNITDIR/stepd.service.d/network.conf"
else
    say "network: this host only (NETWORK=any or NETWORK=\"10.0.0.5 ...\" to reach others)"
fi

# The configuration: readable by the service's dynamic user, never overwritten.
install -d -m 0755 "$DESTDIR$CONFDIR"
for file in stepd.toml classroom.asl.yaml classroom.schema.json; do
    if [ -e "$DESTDIR$CONFDIR/$file" ]; then
        say "config: $CONFDIR/$file exists, kept"
    else
        install -m 0644 "$SRC/config/$file" "$DESTDIR$CONFDIR/$file"
        say "config: $CONFDIR/$file"
    fi
done
# the file only: the database (with [store] url) may not be reachable from here yet
"$DESTDIR$VENV/bin/python" -m stepd check --quiet --offline -c "$DESTDIR$CONFDIR/stepd.toml"

# Secrets: root-only files that systemd hands to the service as credentials.
install -d -m 0700 "$DESTDIR$CREDSTORE"
secret=$DESTDIR$CREDSTORE/stepd.signing_secret
if [ -e "$secret" ]; then
    say "signing secret: $CREDSTORE/stepd.signing_secret exists, kept"
else
    (umask 077 && "$PYTHON" -c 'import base64, secrets
print("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())' >"$secret")
    say "signing secret: $CREDSTORE/stepd.signing_secret (new; give it to the classroom server)"
fi

if [ -z "$DESTDIR" ] && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    say "next: systemctl enable --now stepd"
else
    say "next, on the target host: systemctl daemon-reload && systemctl enable --now stepd"
fi
