#!/usr/bin/env bash
# The main job: set-up, the local stack, then the smoke pipeline end to end
# (Kafka -> Flink SQL -> PostgreSQL), printing each step and the measured rate.
# The stack keeps running afterwards for a look around; stop it with
# `.venv/bin/kappa-orch stack down`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

bash scripts/bootstrap.sh
.venv/bin/kappa-orch stack up
.venv/bin/kappa-orch stack smoke --events "${EVENTS:-100000}"
cat <<TXT

The stack is still running:
  Flink UI          http://127.0.0.1:8081
  warehouse         psql postgresql://kappa:kappa@127.0.0.1:5432/warehouse -c 'table smoke.account_totals limit 5'
  stop everything   .venv/bin/kappa-orch stack down
TXT
