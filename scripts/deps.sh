#!/usr/bin/env bash
# Installs what sluice needs to build and test on Debian 12 (called by `make deps`).
# Idempotent and quiet when everything is present: apt is only asked when something is missing.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPS_PREFIX="$REPO/.deps"
LIBNODE_SO="$DEPS_PREFIX/usr/lib/x86_64-linux-gnu/libnode.so.108"
LIBNODE_HEADER="$DEPS_PREFIX/usr/include/node/v8.h"

PACKAGES=(
  build-essential cmake pkg-config ccache git
  libboost1.81-dev libssl-dev libsimdjson-dev libyaml-cpp-dev libhiredis-dev
  libspdlog-dev libfmt-dev libcli11-dev libexpected-dev nlohmann-json3-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  redis-server nginx-light wrk wabt
  clang lld wasi-libc libclang-rt-14-dev-wasm32 libclang-rt-14-dev
  curl ca-certificates
)
# Shared libraries libnode108 links against; needed when it is unpacked into .deps/ rather
# than installed (its JavaScript dependencies are not: we embed V8, not Node's runtime).
LIBNODE_RUNTIME=(libbrotli1 libc-ares2 libicu72 libnghttp2-14 libssl3 libuv1 libuv1-dev zlib1g)

log() { echo "deps: $*" >&2; }

as_root() {
  if [[ $EUID -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    log "need root to run: $*"
    exit 1
  fi
}

# Prints the packages among "$@" that are not fully installed (one dpkg-query for all).
missing_packages() {
  local installed
  installed="$(dpkg-query -W -f='${Package} ${Status}\n' "$@" 2>/dev/null |
    awk '$NF == "installed" { print $1 }' || true)"
  local pkg
  for pkg in "$@"; do
    grep -qxF "$pkg" <<<"$installed" || echo "$pkg"
  done
}

APT_UPDATED=0
apt_update_once() {
  if [[ $APT_UPDATED -eq 0 ]]; then
    log "apt-get update"
    as_root apt-get update -qq
    APT_UPDATED=1
  fi
}

apt_install() {
  apt_update_once
  log "installing: $*"
  as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

libnode_present() {
  [[ -z "$(missing_packages libnode-dev)" ]] || [[ -f "$LIBNODE_SO" && -f "$LIBNODE_HEADER" ]]
}

# Debian's libnode108 cannot be installed next to a Node.js from another source (for example
# NodeSource's `nodejs`, which ships its own copy of the files). Then the two Debian packages
# are unpacked into a project-local prefix that CMake searches; the system is not changed.
unpack_libnode() {
  local tmp
  tmp="$(mktemp -d)"
  # apt-get download drops privileges to _apt when it may write the target directory.
  if id _apt >/dev/null 2>&1 && [[ $EUID -eq 0 ]]; then chown _apt "$tmp"; fi
  log "apt cannot install libnode-dev here; unpacking it into $DEPS_PREFIX"
  (cd "$tmp" && apt-get download -qq libnode108 libnode-dev >/dev/null)
  mkdir -p "$DEPS_PREFIX"
  local deb
  for deb in "$tmp"/*.deb; do
    dpkg-deb -x "$deb" "$DEPS_PREFIX"
  done
  rm -rf "$tmp"
  if [[ ! -f "$LIBNODE_SO" || ! -f "$LIBNODE_HEADER" ]]; then
    log "unpacked libnode but $LIBNODE_SO or $LIBNODE_HEADER is missing"
    exit 1
  fi
}

main() {
  local wanted=("${PACKAGES[@]}")
  # Node.js and npm run the integration tests; keep a Node that is already on PATH.
  if ! command -v node >/dev/null; then
    wanted+=(nodejs npm)
  fi

  local missing
  mapfile -t missing < <(missing_packages "${wanted[@]}")
  if [[ ${#missing[@]} -gt 0 ]]; then
    apt_install "${missing[@]}"
  fi

  if ! libnode_present; then
    apt_update_once
    if as_root apt-get install -s -qq libnode-dev >/dev/null 2>&1; then
      apt_install libnode-dev
    else
      local runtime_missing
      mapfile -t runtime_missing < <(missing_packages "${LIBNODE_RUNTIME[@]}")
      if [[ ${#runtime_missing[@]} -gt 0 ]]; then
        apt_install "${runtime_missing[@]}"
      fi
      unpack_libnode
    fi
  fi

  # The integration tests' npm packages (official OpenAI and Anthropic clients).
  local it="$REPO/tests/integration"
  if [[ -f "$it/package-lock.json" ]]; then
    if [[ ! -d "$it/node_modules" || "$it/package-lock.json" -nt "$it/node_modules/.package-lock.json" ]]; then
      log "npm ci in tests/integration"
      (cd "$it" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    fi
  fi
}

main "$@"
