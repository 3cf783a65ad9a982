#!/usr/bin/env bash
# Runs every fuzz target of the module, one after the other, each for
# FUZZTIME (default 30s; a count such as 50000x bounds executions instead of
# time). Targets are found with `go test -list '^Fuzz'`.
# Usage: scripts/fuzz.sh [FUZZTIME]
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
FUZZTIME="${1:-${FUZZTIME:-30s}}"

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

pkgs="$(go list ./...)"
n=0
for pkg in $pkgs; do
	listing="$(go test -list '^Fuzz' "$pkg")"
	targets="$(grep '^Fuzz' <<<"$listing" || true)"
	for target in $targets; do
		echo "fuzz: $pkg $target for $FUZZTIME"
		n=$((n + 1))
		if go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1 | tee "$log"; then
			continue
		fi
		# Go 1.26's fuzz coordinator can report its own -fuzztime deadline as
		# a failure (go.dev/issue/75804). That report has no failing input;
		# a real failure always writes one.
		if [[ "$FUZZTIME" != *x ]] && grep -q '^    context deadline exceeded$' "$log" &&
			! grep -q 'Failing input written to' "$log"; then
			echo "fuzz: $target: the run ended on the fuzz coordinator's deadline race (go.dev/issue/75804), not on a failing input"
			continue
		fi
		echo "fuzz: $pkg $target failed"
		exit 1
	done
done
echo "fuzz: ran $n fuzz targets"
