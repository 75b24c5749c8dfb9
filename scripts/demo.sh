#!/usr/bin/env bash
# The main job: set-up, the local stack, then the reference payments platform end to
# end: topics, the four reference pipelines deployed through Dagster, sample events,
# the serving tables filling. The stack keeps running afterwards; stop it with
# `.venv/bin/kappa-orch stack down`.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

bash scripts/bootstrap.sh
.venv/bin/kappa-orch stack up
.venv/bin/kappa-orch validate
.venv/bin/python scripts/reference_platform.py "$@"
