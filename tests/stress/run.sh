#!/usr/bin/env bash
# `make test-stress`: the kill / resume / many-worker tests, N rounds, two pytest suites at once in each round (two
# users' jobs on one node, or a test run beside a training run: nothing they share may break either). Each suite has
# its own --basetemp; a round passes when both suites pass. Stops at the first failing round and shows its log.
#   bash tests/stress/run.sh N PYTHON "TEST PATHS" ["-k EXPRESSION"]
set -uo pipefail
n=${1:-30}
py=${2:-.venv/bin/python}
paths=${3:-tests}
keyword=${4:-}
logs=$(mktemp -d "${TMPDIR:-/tmp}/kfgrpo-stress.XXXXXX")
passed=0
for i in $(seq "$n"); do
    pids=()
    for suite in a b; do
        # shellcheck disable=SC2086  # the paths are a list
        "$py" -m pytest -q -p no:cacheprovider -x --basetemp="$logs/round$i-$suite" $paths ${keyword:+-k "$keyword"} \
            > "$logs/round$i-$suite.log" 2>&1 &
        pids+=($!)
    done
    ok=1
    for pid in "${pids[@]}"; do wait "$pid" || ok=0; done
    if [ "$ok" = 0 ]; then
        for suite in a b; do tail -n 40 "$logs/round$i-$suite.log"; done
        echo "test-stress: round $i of $n failed ($passed passed before it); logs in $logs"
        exit 1
    fi
    passed=$((passed + 1))
    rm -rf "$logs/round$i-a" "$logs/round$i-b"
    echo "test-stress: round $i / $n passed ($(tail -n 1 "$logs/round$i-a.log"))"
done
echo "test-stress: $passed / $n rounds passed, two suites at once each"
