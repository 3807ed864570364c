#!/usr/bin/env bash
# What `make test` needs from the machine beyond Python and make (Debian's packages).
#
# As root: installs whatever is missing with apt-get, quietly and without questions. As anyone
# else: names what is missing, with the apt-get command line that installs it, and stops before
# any test runs. No service is started: the tests start the servers they use themselves.
#
# To add a need: one `need PACKAGE CHECK...` line below, where CHECK is a command that succeeds
# once PACKAGE is installed.
set -euo pipefail

as_root=$([ "$(id -u)" = 0 ] && echo yes || echo no)
missing=()

need() { # need PACKAGE CHECK...: PACKAGE is missing unless CHECK succeeds
    local package=$1
    shift
    "$@" >/dev/null 2>&1 || missing+=("$package")
}

on_path() { command -v "$1"; }

need systemd on_path systemd-analyze # `make systemd-check`: the unit verified and scored
# tests/acceptance/test_ui_browser.py: Debian's Chromium, driven through chromedriver
need chromium test -x /usr/bin/chromium
need chromium-driver test -x /usr/bin/chromedriver
# tests/integration/test_clock.py (and tests/soak): the daemon's wall clock moved by libfaketime
need faketime compgen -G '/usr/lib/*/faketime/libfaketime.so.1'
# tests/acceptance/test_aws_sdk_js.py: the AWS SDKs for JavaScript, which `npm ci` installs
need nodejs on_path node
need npm on_path npm
if [ "$as_root" = yes ]; then
    # tests/system/test_boot.py, which needs root: a real systemd in systemd-nspawn, stepd
    # installed into a venv of the system Python as systemd/install.sh does on a host
    need systemd-container on_path systemd-nspawn
    need python3-venv /usr/bin/python3 -c 'import ensurepip'
    need procps on_path pgrep
fi
# The PostgreSQL store's tests (tests/postgres_server.py): they run a throwaway server of their
# own (initdb and pg_ctl in a temporary folder), so only the programs are needed. `ip` (iproute2)
# is there for cutting a node off in a network namespace of its own (the cut-off test relays its
# connections through the test process today)
need postgresql compgen -G '/usr/lib/postgresql/*/bin/postgres'
need iproute2 on_path ip

if [ "$as_root" = yes ]; then
    if [ ${#missing[@]} -gt 0 ]; then
        echo "tests/setup.sh: installing ${missing[*]}"
        log=$(mktemp)
        if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
            "${missing[@]}"; } >"$log" 2>&1; then
            cat "$log" >&2
            rm -f "$log"
            echo "tests/setup.sh: apt-get could not install ${missing[*]}" >&2
            exit 1
        fi
        rm -f "$log"
    fi
    exit 0
fi

if [ ${#missing[@]} -gt 0 ]; then
    cat >&2 <<EOF
make test needs Debian packages this machine lacks: ${missing[*]}
Install them as root, then run make test again:

    apt-get install ${missing[*]}

(make test run as root installs them itself.)
EOF
    exit 1
fi
