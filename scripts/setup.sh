#!/usr/bin/env bash
# Install what campaign-history needs to build and test (Debian 12 packages), then configure and
# build it. Safe to run any number of times: it installs only what is missing and rebuilds only
# what changed.
#
#   scripts/setup.sh            # install + build (build dir: ./build, or $CH_BUILD_DIR)
#   CH_SKIP_INSTALL=1 scripts/setup.sh   # build only
#   CH_SETUP_EXTRA_PACKAGES="clang libclang-rt-14-dev" scripts/setup.sh   # more packages too
#                               (.ci/run: the sanitizer builds and fuzzers, docs/testing.md)
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGES=(
  build-essential cmake ninja-build pkg-config git ca-certificates curl clang-format
  libsqlite3-dev nlohmann-json3-dev libcli11-dev libfmt-dev libspdlog-dev libzstd-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  libpq-dev libcpp-httplib-dev libssl-dev zlib1g-dev libbrotli-dev
  postgresql-15 postgresql-client-15
  clickhouse-server clickhouse-client
)
read -ra extra_packages <<<"${CH_SETUP_EXTRA_PACKAGES:-}"
PACKAGES+=("${extra_packages[@]}")

missing=()
if [ -z "${CH_SKIP_INSTALL:-}" ]; then
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

BUILD_DIR="${CH_BUILD_DIR:-build}"
if [ ! -f "$BUILD_DIR/build.ninja" ]; then
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="${CH_BUILD_TYPE:-RelWithDebInfo}"
fi
cmake --build "$BUILD_DIR" --parallel "$(nproc)"
