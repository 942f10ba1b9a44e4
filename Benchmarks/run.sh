#!/usr/bin/env bash
# The benchmark suite in one command, on a Debian 12 machine with the Swift toolchain: installs
# what is missing (redis-server; nginx-light too with --with-nginx), builds in release, and runs
# `cachegateway-bench run all` with the other arguments (or only the scenarios named in them).
#
#   bash Benchmarks/run.sh                         # every scenario, ~10 s of load per target
#   bash Benchmarks/run.sh --with-nginx            # ... and compare with nginx proxy_cache
#   bash Benchmarks/run.sh --smoke                 # ~2-3 s per target: what CI runs
#   bash Benchmarks/run.sh herd --herd-size 500    # one scenario, with its options
#   bash Benchmarks/run.sh users --duration 5m     # the memory soak
#   bash Benchmarks/run.sh local-soak --duration 2m  # the in-process tier's memory soak
#   bash Benchmarks/run.sh expiry --with-nginx     # stale-while-revalidate at expiry, against nginx
#   bash Benchmarks/run.sh outage --with-nginx     # stale-if-error while the backend hangs
#   bash Benchmarks/run.sh invalidate              # purges from the stream, two instances (gateway only)
#   bash Benchmarks/run.sh scale --with-nginx      # 1, 2, 3 instances on one Redis: herd calls per key, hits
#
# Reports go to Benchmarks/results/ (latest.html, latest.json). SCRATCH_PATH picks the build folder
# (default .build). Exits non-zero when an invariant of a scenario is broken.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh

with_nginx=0
args=()
scenario_named=0
for arg in "$@"; do
    case "$arg" in
        --with-nginx) with_nginx=1 ;;
        all|hit|miss|herd|users|local-soak|shield|expiry|outage|invalidate|scale) scenario_named=1; args+=("$arg") ;;
        *) args+=("$arg") ;;
    esac
done
[ "$scenario_named" -eq 1 ] || args=(all ${args[@]+"${args[@]}"})

need_packages "${BUILD_PACKAGES[@]}" redis-server
if [ "$with_nginx" -eq 1 ] && ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
    need_packages nginx-light || echo "==> nginx-light could not be installed: running without the nginx comparison"
fi

scratch=${SCRATCH_PATH:-.build}
echo "==> swift build -c release (scratch path $scratch)"
swift build -c release --scratch-path "$scratch" --product gateway >/dev/null
swift build -c release --scratch-path "$scratch" --product demo-monolith >/dev/null
swift build -c release --scratch-path "$scratch" --product cachegateway-bench >/dev/null
bin=$(swift build -c release --scratch-path "$scratch" --show-bin-path)

echo "==> cachegateway-bench run ${args[*]}"
exec "$bin/cachegateway-bench" run "${args[@]}"
