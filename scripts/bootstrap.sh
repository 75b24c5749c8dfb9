#!/usr/bin/env bash
# Installs what kappa-orch needs on a fresh Debian/Ubuntu machine, and nothing twice:
#   system packages (Java 17, Maven, PostgreSQL server binaries; with --tests also
#   Chromium, which the UI test drives headless) when missing,
#   a virtualenv in .venv with the pinned Python dependencies (one resolver pass),
#   the Kafka broker and Flink connector jars from Maven Central (into .kappa/jars).
# Elsewhere: install Java 17+, Maven 3.8+ and a PostgreSQL server (initdb, postgres)
# yourself, then run this script; it only does the Python and jar steps.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
PYTHON=${PYTHON:-python3}

say() { printf '\033[1m[bootstrap]\033[0m %s\n' "$*"; }

missing=()
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
# javac builds kappa_orch's Flink classes: the JDBC job-password plugin and the event parser (kappa_orch/stack/java)
command -v javac >/dev/null 2>&1 || missing+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
if ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && ! command -v postgres >/dev/null 2>&1; then
  missing+=(postgresql)
fi
if ! "$PYTHON" -c 'import ensurepip, venv' >/dev/null 2>&1; then
  missing+=(python3-venv)
fi
# the security tests knock on Flink's endpoints with curl as an unprivileged user
if [ "${1:-}" = "--tests" ] && ! command -v curl >/dev/null 2>&1; then
  missing+=(curl)
fi
if [ "${1:-}" = "--tests" ] && ! command -v chromium >/dev/null 2>&1 && ! command -v chromium-browser >/dev/null 2>&1; then
  missing+=(chromium)
fi

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
    say "missing: ${missing[*]}"
    say "install them with your package manager (as root on Debian/Ubuntu: apt-get install -y ${missing[*]}), then run this again"
    exit 1
  fi
  if [[ " ${missing[*]} " == *" postgresql "* ]]; then
    # kappa-orch runs its own server from .kappa/; keep Debian's package from creating
    # and starting a second cluster on port 5432
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/kappa-orch.conf
  fi
  say "apt-get install ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

"$PYTHON" - <<'PY'
import sys
if sys.version_info < (3, 11):
    sys.exit(f"kappa-orch needs Python >= 3.11, found {sys.version.split()[0]}; set PYTHON=python3.11")
PY

stamp=.venv/.kappa-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  say "creating .venv and installing the pinned dependencies (a few minutes the first time)"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  # one resolver pass against constraints.txt: apache-flink's apache-beam pins
  # (grpcio, protobuf, numpy, pyarrow, pandas) must not be upgraded by a later call
  .venv/bin/python -m pip install -q -c constraints.txt -e '.[dev]'
  echo "$want" > "$stamp"
else
  say ".venv is up to date"
fi

.venv/bin/kappa-orch stack jars
