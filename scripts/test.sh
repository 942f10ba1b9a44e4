#!/usr/bin/env bash
# Runs the whole test suite, then the concurrent suites again under ThreadSanitizer (scripts/tsan.sh),
# then the libFuzzer targets for FUZZ_SECONDS each (default 30; see scripts/fuzz.sh), then a smoke run of the benchmark (a few seconds per scenario, with the debug
# build: it checks the scenarios' invariants, e.g. one backend call per key in a herd, not speed).
# Installs the build and test dependencies with apt-get when missing; the tests start their own
# redis-server, demo backends and gateways on 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
# systemd: only for systemd-analyze, which ServiceFilesTests runs on contrib/systemd's unit.
need_packages "${BUILD_PACKAGES[@]}" "${RUNTIME_PACKAGES[@]}" systemd
export REDIS_SERVER="${REDIS_SERVER:-$(command -v redis-server || echo /usr/bin/redis-server)}"
# redis-sentinel and systemd-analyze are installed above: a test that needs one fails without it
# (Tests/GatewayIntegrationTests/RequiredTool.swift) instead of skipping.
export CACHEGATEWAY_TOOLS_INSTALLED=1
echo "==> swift build --build-tests"
swift build --build-tests
echo "==> swift test"
swift test --skip-build
bash scripts/tsan.sh
echo "==> fuzz (${FUZZ_SECONDS:-30} s per target)"
bash scripts/fuzz.sh --seconds "${FUZZ_SECONDS:-30}"
echo "==> benchmark smoke run (invariants only)"
"$(swift build --show-bin-path)/cachegateway-bench" run all --smoke --out "${TMPDIR:-/tmp}/cachegateway-smoke"
