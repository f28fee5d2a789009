#!/usr/bin/env bash
# Idempotent installer for the system packages the xgen-kit test suite needs on a fresh Debian
# machine (run as root, or with sudo available). A fast no-op when everything is already present:
# it only runs `apt-get update` / `apt-get install` when dpkg reports a package missing.
#
# The package list and the install logic live in lib/setup (system_packages.ts names every
# package and why; the commands that train install its `cpu` fast-path part the same way); this
# script only finds a Deno to run tests/setup/ensure_deps.ts with.
#
# Usage: bash tests/setup/ensure_deps.sh            # install what is missing
#        bash tests/setup/ensure_deps.sh --check    # only report, exit 1 when something is missing
#        bash tests/setup/ensure_deps.sh --list     # print the package list, one per line
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# `deno task` and `npx deno@...` put their deno first on PATH; the pinned npm one otherwise.
if command -v deno >/dev/null 2>&1; then
  deno=(deno)
else
  deno=(npx --yes deno@2.9.6)
fi
exec "${deno[@]}" run --quiet --allow-run --allow-sys "$here/ensure_deps.ts" "$@"
