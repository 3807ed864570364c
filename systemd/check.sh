#!/bin/bash
# The unit's CI gate: `systemd-analyze verify` clean and an offline exposure score of at most
# 1.5. verify needs the ExecStart= program to exist, so it checks a copy of the unit that runs
# the development virtualenv (VENV) in place of /opt/stepd/venv.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
UNIT=$HERE/stepd.service
VENV=${VENV:-$(cd "$HERE/.." && pwd)/.venv}
EXPOSURE_THRESHOLD=15  # the score x10

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
sed "s|/opt/stepd/venv|$VENV|g" "$UNIT" >"$work/stepd.service"
systemd-analyze verify --recursive-errors=no "$work/stepd.service"

if ! systemd-analyze security --offline=yes --threshold="$EXPOSURE_THRESHOLD" "$UNIT" >"$work/security"; then
    cat "$work/security"
    echo "stepd.service: exposure above $EXPOSURE_THRESHOLD/10" >&2
    exit 1
fi
echo "stepd.service: verify clean; $(tail -n 1 "$work/security" | sed 's/^→ //')"
