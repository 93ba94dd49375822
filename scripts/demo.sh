#!/usr/bin/env bash
# Quick start 1: set up, build and run the embedded demo (SQLite files in ./campaign-history-data).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec "${CH_BUILD_DIR:-build}/campaign-history" demo "$@"
