#!/usr/bin/env bash
# The test command: set-up, lint and types, then unit and integration tests on the
# real local stack. Starts the stack if it is not running and stops it again on exit
# (also when tests fail); a stack that was already running is left running.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

bash scripts/bootstrap.sh --tests
KO=.venv/bin/kappa-orch

started=0
stop_stack() {
  if [ "$started" = 1 ]; then
    echo "[test] stopping the stack this run started"
    "$KO" stack down || true
  fi
}
trap stop_stack EXIT

echo "[test] ruff and mypy"
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy

if ! "$KO" stack status >/dev/null 2>&1; then
  started=1
  "$KO" stack up
fi

# the server dry-run layer of `kappa-orch k8s validate` (tests/integration/test_k8s_dry_run.py)
if command -v go >/dev/null 2>&1; then
  echo "[test] kube-apiserver and etcd from the Go module proxy (cached in ~/.cache/kappa-orch/kube)"
  bash scripts/kube_apiserver.sh
else
  echo "[test] no Go toolchain: k8s validate's server dry-run layer says 'not run' (the test checks it says so)"
fi

# Two phases. Every integration test that keeps to its own database, topics and deployment
# runs in parallel, a file per worker (the servers wait on I/O more than they use the
# cores). Then the few that kill, fill or reconfigure the shared stack (marked
# `disruptive`) run alone on it, and beside them the unit tests, which use no server.
workers=${KAPPA_TEST_WORKERS:-5}
rc=0
# pytest's exit status, except 5 (no test selected, e.g. by -k): that is no failure
tests() { .venv/bin/python -m pytest "$@" || { status=$?; [ "$status" = 5 ] || return "$status"; }; }
echo "[test] integration tests, $workers in parallel"
tests tests/integration -m "not disruptive" -n "$workers" --dist loadfile --durations=30 "$@" || rc=$?
echo "[test] the tests that kill, fill or reconfigure the shared stack, alone on it; the unit tests beside them"
units_log=$(mktemp)
tests tests/unit -n 2 --durations=10 "$@" >"$units_log" 2>&1 &
units=$!
tests tests/integration -m disruptive --durations=10 "$@" || rc=$((rc ? rc : $?))
wait "$units" || rc=$((rc ? rc : $?))
echo "[test] the unit tests"
cat "$units_log"
rm -f "$units_log"
exit "$rc"
