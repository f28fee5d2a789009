#!/usr/bin/env bash
# Idempotent installer for the system packages the xgen-kit test suite needs on a fresh Debian
# machine (run as root, or with sudo available). A fast no-op when everything is already present:
# it only runs `apt-get update` / `apt-get install` when `dpkg -s` reports a package missing.
#
# Usage: bash tests/setup/ensure_deps.sh            # install what is missing
#        bash tests/setup/ensure_deps.sh --check    # only report, exit 1 when something is missing
#        bash tests/setup/ensure_deps.sh --list     # print the package list, one per line
set -euo pipefail

# The single list of Debian packages the tests rely on (why each is needed):
PACKAGES=(
  libopenblas0-pthread   # `cpu` backend: cblas_sgemm through Deno FFI
  gcc                    # `cpu` backend: compiles lib/backend/native/xgen_kernels.c once
  libc6-dev              # the C headers (math.h, string.h) that compile needs
  mesa-vulkan-drivers    # `webgpu` backend: lavapipe software Vulkan
  libvulkan1             # `webgpu` backend: Vulkan loader
  chromium               # headless browser checks of Plotly/HTML reports
  python3-nbclient       # tests/notebook_runner/run_notebook.py executes notebooks with it
  jupyter-nbconvert      # notebook format tooling (nbformat) and HTML export
  jupyter-client         # kernel launching / messaging used by nbclient
  python3-ipykernel      # jupyter's kernel machinery (nbclient's kernel-manager defaults)
  python3-zmq            # ZeroMQ transport for the Jupyter messaging protocol
  openmpi-bin            # data-parallel tests: mpirun starts the ranks
  libopenmpi-dev         # data-parallel tests: libmpi.so.40 loaded through Deno FFI
)

mode="${1:-install}"
[[ "$mode" == "--install" ]] && mode=install
case "$mode" in
  install | --check) ;;
  --list)
    printf '%s\n' "${PACKAGES[@]}"
    exit 0
    ;;
  *)
    echo "ensure_deps: unknown argument '$mode'; expected --check, --list or nothing" >&2
    exit 2
    ;;
esac

missing=()
for pkg in "${PACKAGES[@]}"; do
  # dpkg -s succeeds for removed-but-configured packages too; require "install ok installed".
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "ensure_deps: all ${#PACKAGES[@]} system packages present"
  exit 0
fi

if [[ "$mode" == "--check" ]]; then
  echo "ensure_deps: missing: ${missing[*]}" >&2
  exit 1
fi

if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure_deps: missing packages (${missing[*]}) and apt-get is not available;" \
    "install them by hand" >&2
  exit 1
fi

SUDO=()
if [[ "$(id -u)" -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
  else
    echo "ensure_deps: missing packages (${missing[*]}); need root or sudo to install them" >&2
    exit 1
  fi
fi

echo "ensure_deps: installing: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
echo "ensure_deps: installed ${#missing[@]} package(s)"
