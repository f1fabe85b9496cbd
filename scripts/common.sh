# Shared by scripts/run and scripts/test: dependency install and configure+build of a preset.
# shellcheck shell=bash
set -euo pipefail
IPCH_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
IPCH_PACKAGES=(build-essential cmake ninja-build ccache g++ clang libgtest-dev libgmock-dev libbenchmark-dev
               librapidcheck-dev nlohmann-json3-dev python3 util-linux iproute2 pkg-config libcurl4-openssl-dev
               libcpp-httplib-dev gcovr libzmq3-dev libnng-dev libboost-dev libcli11-dev
               zip unzip patchelf python3-yaml libxml2-utils python3-jsonschema chromium)

ipch_log() { printf '\033[1m== %s\033[0m\n' "$*" >&2; }

# Installs missing Debian packages (we run as root on CI and dev machines; otherwise say what is missing).
ipch_install_deps() {
  local missing=()
  for p in "${IPCH_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
    return 1
  fi
  ipch_log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# SysV message queues: the conformance battery, like a socket's buffer, assumes 64 KiB can wait
# in a connection without a reader; the kernel's default queue is 16 KiB (kernel.msgmnb), and
# raising a queue above it needs CAP_SYS_RESOURCE. As root we raise the default to 1 MiB.
ipch_kernel_prepare() {
  local mnb
  mnb=$(sysctl -n kernel.msgmnb 2>/dev/null || echo 0)
  if [ "$mnb" -lt 1048576 ] && [ "$(id -u)" -eq 0 ]; then sysctl -qw kernel.msgmnb=1048576 || true; fi
}

# TSan's shadow memory needs at most 28 bits of mmap randomisation on newer kernels.
ipch_tsan_prepare() {
  local bits
  bits=$(sysctl -n vm.mmap_rnd_bits 2>/dev/null || echo 28)
  if [ "$bits" -gt 28 ] && [ "$(id -u)" -eq 0 ]; then sysctl -qw vm.mmap_rnd_bits=28 || true; fi
}

ipch_build() {  # preset [cmake --build options...]; the full log goes to build/PRESET.log, shown only on failure
  local preset=$1 log="$IPCH_ROOT/build/$1.log"
  shift
  mkdir -p "$IPCH_ROOT/build"
  ipch_log "configure + build: $preset"
  if ! { cmake --preset "$preset" -S "$IPCH_ROOT" && cmake --build --preset "$preset" "$@"; } >"$log" 2>&1; then
    grep -E -A5 'error|Error|FAILED' "$log" | head -n 80 >&2
    echo "build of preset '$preset' failed; full log: $log" >&2
    return 1
  fi
}

# Runs a command under `setarch -R` for tsan (no ASLR: TSan's memory layout), directly otherwise.
ipch_exec() {  # preset cmd...
  local preset=$1
  shift
  if [ "$preset" = tsan ]; then setarch "$(uname -m)" -R "$@"; else "$@"; fi
}
