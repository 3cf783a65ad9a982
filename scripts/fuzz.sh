#!/usr/bin/env bash
# Runs every fuzz target of the module, one after the other, each for
# FUZZTIME (default 30s; a count such as 50000x bounds executions instead of
# time). Targets are found with `go test -list '^Fuzz'`.
# Usage: scripts/fuzz.sh [FUZZTIME]
set -euo pipefail

cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
FUZZTIME="${1:-${FUZZTIME:-30s}}"

# fuzz_args prints the -fuzztime (and other) flags for target $1.
# FuzzRealFS runs every input against the real file system, about a
# millisecond each: a count-bounded run gives it a tenth of the count, and
# the minimisation of each new input is bounded by a count too (its default
# is 60s per input, during which no new input is tried).
fuzz_args() {
	case "$1" in
	FuzzRealFS)
		local t="$FUZZTIME"
		if [[ "$t" == *x ]]; then
			t="$((${t%x} / 10))x"
		fi
		echo "-fuzztime $t -fuzzminimizetime 500x"
		;;
	*) echo "-fuzztime $FUZZTIME" ;;
	esac
}

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

pkgs="$(go list ./...)"
n=0
for pkg in $pkgs; do
	listing="$(go test -list '^Fuzz' "$pkg")"
	targets="$(grep '^Fuzz' <<<"$listing" || true)"
	for target in $targets; do
		echo "fuzz: $pkg $target: $(fuzz_args "$target")"
		n=$((n + 1))
		# shellcheck disable=SC2046 # fuzz_args prints separate flags
		if go test -run '^$' -fuzz "^${target}\$" $(fuzz_args "$target") "$pkg" 2>&1 | tee "$log"; then
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
