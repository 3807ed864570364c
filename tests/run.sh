#!/usr/bin/env bash
# `make test`'s pytest run. The tests that mostly wait on real time (an upgrade taken over two
# minutes after its start, the shipped machine's one-minute ping wait) run in a second pytest
# process beside the rest; both must pass. Extra arguments go to both.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTEST=${PYTEST:-.venv/bin/pytest}
WAITING=(tests/upgrade tests/integration/test_shipped_classroom.py)

side_log=$(mktemp)
trap 'rm -f "$side_log"' EXIT
"$PYTEST" -q -p no:cacheprovider "${WAITING[@]}" "$@" >"$side_log" 2>&1 &
side=$!

ignored=()
for path in "${WAITING[@]}"; do ignored+=("--ignore=$path"); done
"$PYTEST" -q --durations=15 "${ignored[@]}" "$@"
main_status=$?

wait "$side"
side_status=$?
# 5 is pytest's "no tests collected": extra arguments (-k) may leave one of the two empty
[ "$main_status" -eq 5 ] && main_status=0
[ "$side_status" -eq 5 ] && side_status=0
echo "--- ${WAITING[*]} (run beside the rest) ---"
cat "$side_log"
if [ "$main_status" -ne 0 ] || [ "$side_status" -ne 0 ]; then
    echo "make test: FAILED (the rest: exit $main_status; ${WAITING[*]}: exit $side_status)" >&2
    exit 1
fi
