#!/usr/bin/env bash
# Reduce a `deno test` log to one line: `tests: N passed, M failed`.
#
# Usage: bash tests/setup/parse_summary.sh LOG   (or read the log from stdin)
#
# Deno ends a run with a summary such as
#   ok | 42 passed (3 steps) | 0 failed | 2 ignored (12s)
#   FAILED | 40 passed | 2 failed (1m3s)
# N and M are the top-level test counts from the LAST such line (test output printed earlier
# in the log can never override the real summary). ANSI colours are stripped first. When no
# summary exists (type-check error, crash before the report) it prints `tests: 0 passed, 1 failed`.
# Exit status: 0 when a summary was found and M is 0, else 1.
set -euo pipefail

input="${1:-/dev/stdin}"
if [[ "$input" != /dev/stdin && ! -r "$input" ]]; then
  echo "parse_summary: $input: expected a readable deno test log" >&2
  exit 2
fi

# ESC via printf so the pattern works in mawk and gawk alike.
esc=$(printf '\033')
sed "s/${esc}\[[0-9;]*[A-Za-z]//g" "$input" | awk '
  /^(ok|FAILED) \| [0-9]+ passed/ { line = $0 }
  END {
    if (line == "") { print "tests: 0 passed, 1 failed"; exit 1 }
    passed = line; sub(/^(ok|FAILED) \| /, "", passed); sub(/ passed.*/, "", passed)
    failed = 0
    if (match(line, /\| [0-9]+ failed/)) {
      failed = substr(line, RSTART + 2, RLENGTH - 2); sub(/ failed/, "", failed)
    }
    # A FAILED verdict with a zero failure count (e.g. an "only" filter) still fails.
    if (line ~ /^FAILED/ && failed == 0) failed = 1
    printf "tests: %d passed, %d failed\n", passed, failed
    exit (failed > 0 ? 1 : 0)
  }'
