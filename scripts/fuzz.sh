#!/usr/bin/env bash
# Runs every fuzz target of the module, one after the other, each for
# FUZZTIME (default 30s). Targets are found with `go test -list '^Fuzz'`.
# Usage: scripts/fuzz.sh [FUZZTIME]
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
FUZZTIME="${1:-${FUZZTIME:-30s}}"

pkgs="$(go list ./...)"
n=0
for pkg in $pkgs; do
	listing="$(go test -list '^Fuzz' "$pkg")"
	targets="$(grep '^Fuzz' <<<"$listing" || true)"
	for target in $targets; do
		echo "fuzz: $pkg $target for $FUZZTIME"
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg"
		n=$((n + 1))
	done
done
echo "fuzz: ran $n fuzz targets"
