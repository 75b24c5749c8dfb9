#!/usr/bin/env bash
# Builds a real kube-apiserver and etcd from the Go module proxy, for the server-side
# dry-run layer of `kappa-orch k8s validate` (issue 15, point 5). Cached outside the
# repository: $KAPPA_KUBE_CACHE (default ~/.cache/kappa-orch/kube), binaries in its bin/.
# Idempotent: a second run with the binaries present does nothing. Prints the build time.
#
#   scripts/kube_apiserver.sh            # build (tens of minutes on 2 cores the first time)
#   KAPPA_KUBE_VERSION=1.34.4 scripts/kube_apiserver.sh
set -euo pipefail

VERSION=${KAPPA_KUBE_VERSION:-1.34.4}
ETCD=${KAPPA_ETCD_VERSION:-3.6.16}
CACHE=${KAPPA_KUBE_CACHE:-$HOME/.cache/kappa-orch/kube}
BIN=$CACHE/bin
say() { printf '\033[1m[kube]\033[0m %s\n' "$*"; }

command -v go >/dev/null || { say "go is not installed (Debian: apt-get install golang); nothing built"; exit 1; }
if [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/etcd" ] && [ "$(cat "$BIN/.version" 2>/dev/null)" = "$VERSION/$ETCD" ]; then
  say "kube-apiserver v$VERSION and etcd v$ETCD are built in $BIN"
  exit 0
fi
mkdir -p "$BIN" "$CACHE/src/apiserver" "$CACHE/src/etcd"
started=$(date +%s)

# kube-apiserver: k8s.io/kubernetes as a dependency; its staging modules (k8s.io/api, ...)
# are replaced by their published versions (v0.<minor>.<patch>), as its own go.mod does
# with ./staging folders
cd "$CACHE/src/apiserver"
cat > main.go <<'GO'
package main

import (
	"os"

	"k8s.io/component-base/cli"
	"k8s.io/kubernetes/cmd/kube-apiserver/app"
)

func main() {
	os.Exit(cli.Run(app.NewAPIServerCommand()))
}
GO
staging="0.${VERSION#1.}"
rm -f go.mod go.sum
go mod init kappa-orch/kube-apiserver >/dev/null 2>&1
go mod edit -require="k8s.io/kubernetes@v$VERSION"
gomod=$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/v$VERSION.mod
go mod download "k8s.io/kubernetes@v$VERSION"
for module in $(grep -oE '^\s+k8s.io/[a-z0-9-]+ => ./staging' "$gomod" | awk '{print $1}'); do
  go mod edit -replace="$module=$module@v$staging"
done
say "resolving kube-apiserver v$VERSION's modules"
go mod tidy >/dev/null
say "building kube-apiserver"
minor=${VERSION#1.}; minor=${minor%%.*}
flags="-X k8s.io/component-base/version.gitVersion=v$VERSION -X k8s.io/component-base/version.gitMajor=1"
flags="$flags -X k8s.io/component-base/version.gitMinor=$minor"
go build -ldflags "$flags" -o "$BIN/kube-apiserver" .

# etcd: its server's own main
cd "$CACHE/src/etcd"
cat > main.go <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
GO
rm -f go.mod go.sum
go mod init kappa-orch/etcd >/dev/null 2>&1
go mod edit -require="go.etcd.io/etcd/server/v3@v$ETCD"
say "resolving etcd v$ETCD"
go mod tidy >/dev/null
say "building etcd"
go build -o "$BIN/etcd" .

echo "$VERSION/$ETCD" > "$BIN/.version"
say "built in $(( $(date +%s) - started )) s: $BIN/kube-apiserver, $BIN/etcd"
