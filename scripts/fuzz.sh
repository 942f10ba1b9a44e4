#!/usr/bin/env bash
# Builds and runs the libFuzzer targets in Fuzz/ (README "Fuzzing").
#
#   scripts/fuzz.sh [--seconds N] [--build-only] [--keep-corpus] [target...]
#
# Each target is compiled by swiftc -sanitize=fuzzer,address from the real source files listed in
# TARGETS below, with its harness Fuzz/<target>/main.swift joining the module under test (so it
# sees internals), into .build-fuzz/<target>/ (git-ignored). SwiftPM is not involved: it would build
# the whole module with its C dependencies. Each target then runs N seconds (default 30) on a
# temporary copy of Fuzz/corpus/<target>/, so the inputs it finds never dirty the tree
# (--keep-corpus keeps that copy and prints where it is). Exits non-zero when a target does not
# build or finds a crash, timeout or memory blow-up, after printing the reproducer's path and hex.
set -euo pipefail
cd "$(dirname "$0")/.."

# Targets, one line each: required|optional | name | module the harness joins | sources (globs) |
# dependency module ("Module=files", compiled first into its own module, which the sources import).
# A required target whose sources are missing fails the run; an optional one is skipped, loudly.
TARGETS=(
    "required|http-request-parser|GatewayHTTP|Sources/GatewayHTTP/HTTPRequestParser*.swift Sources/GatewayHTTP/ASCIISet.swift Sources/GatewayHTTP/HTTPTypes.swift|"
    "required|cached-response|GatewayCore|Sources/GatewayCore/CachedResponse.swift|GatewayHTTP=Sources/GatewayHTTP/HTTPTypes.swift"
    "required|response-head-parser|GatewayUpstream|Sources/GatewayUpstream/ResponseHeadParser.swift Sources/GatewayUpstream/UpstreamError.swift|"
)

fuzz_seconds=30
build_only=0
keep_corpus=0
selected=()
while [ $# -gt 0 ]; do
    case "$1" in
        --seconds) fuzz_seconds="$2"; shift 2 ;;
        --seconds=*) fuzz_seconds="${1#*=}"; shift ;;
        --build-only) build_only=1; shift ;;
        --keep-corpus) keep_corpus=1; shift ;;
        -h|--help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
        *) selected+=("$1"); shift ;;
    esac
done

SWIFTC="${SWIFTC:-$(command -v swiftc || echo /opt/swift/usr/bin/swiftc)}"
OUT=.build-fuzz
demangle=cat
if command -v swift-demangle >/dev/null; then demangle="swift-demangle --simplified"; fi
# Everything the compiler caches stays in the repo's build folder.
FLAGS=(-sanitize=fuzzer,address -parse-as-library -O -wmo -gline-tables-only -swift-version 6 -use-ld=lld -module-cache-path "$OUT/module-cache")
# libFuzzer limits: a slow input (e.g. a quadratic path) or a memory blow-up counts as a failure.
RUN_FLAGS=(-timeout=10 -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1)

# Expands a list of paths and globs; prints the files, or returns 1 naming what is missing.
expand() {
    local word words matches missing=0
    read -ra words <<<"$1"
    for word in "${words[@]}"; do
        shopt -s nullglob
        matches=($word)
        shopt -u nullglob
        # A literal path that does not exist survives nullglob: check it too.
        if [ ${#matches[@]} -eq 0 ] || [ ! -f "${matches[0]}" ]; then
            echo "missing: $word" >&2
            missing=1
            continue
        fi
        printf '%s\n' "${matches[@]}"
    done
    return $missing
}

# build NAME MODULE SOURCES DEPENDENCY: compiles .build-fuzz/NAME/fuzzer unless it is up to date.
build() {
    local name=$1 module=$2 dir="$OUT/$1" sources deps=() dep_module="" dep_files=()
    mapfile -t sources < <(expand "$3")
    if [ -n "$4" ]; then
        dep_module=${4%%=*}
        mapfile -t dep_files < <(expand "${4#*=}")
    fi
    local inputs=("${sources[@]}" "${dep_files[@]}" "Fuzz/$name/main.swift" scripts/fuzz.sh)
    if [ -x "$dir/fuzzer" ] && [ -z "$(find "${inputs[@]}" -newer "$dir/fuzzer" | head -1)" ]; then
        echo "==> fuzz: $name is up to date ($dir/fuzzer)"
        return 0
    fi
    echo "==> fuzz: building $name (module $module: ${sources[*]}${dep_module:+; $dep_module: ${dep_files[*]}})"
    mkdir -p "$dir/deps"
    if [ -n "$dep_module" ]; then
        "$SWIFTC" "${FLAGS[@]}" -module-name "$dep_module" -emit-module \
            -emit-module-path "$dir/deps/$dep_module.swiftmodule" -c "${dep_files[@]}" -o "$dir/deps/$dep_module.o" \
            || return 1
        deps=(-I "$dir/deps" "$dir/deps/$dep_module.o")
    fi
    "$SWIFTC" "${FLAGS[@]}" -module-name "$module" "${deps[@]}" "${sources[@]}" "Fuzz/$name/main.swift" \
        -o "$dir/fuzzer.new" || return 1
    mv "$dir/fuzzer.new" "$dir/fuzzer"
}

# run NAME: fuzzes for $fuzz_seconds on a copy of the corpus; prints a summary; 1 on a finding.
run() {
    local name=$1 dir="$OUT/$1" corpus rc=0
    corpus=$(mktemp -d "${TMPDIR:-/tmp}/fuzz-corpus-$name.XXXXXX")
    if [ $keep_corpus -eq 0 ]; then temp_dirs+=("$corpus"); fi
    if [ -d "Fuzz/corpus/$name" ]; then cp -R "Fuzz/corpus/$name/." "$corpus/" || return 1; fi
    local seeds
    seeds=$(find "$corpus" -type f | wc -l)
    mkdir -p "$dir/artifacts"
    local args=("${RUN_FLAGS[@]}" -max_total_time="$fuzz_seconds" -artifact_prefix="$dir/artifacts/")
    if [ -f "Fuzz/$name/fuzz.dict" ]; then args+=(-dict="Fuzz/$name/fuzz.dict"); fi
    echo "==> fuzz: running $name for ${fuzz_seconds}s ($seeds seeds; log: $dir/fuzz.log)"
    SWIFT_BACKTRACE=enable=no "$dir/fuzzer" "${args[@]}" "$corpus" >"$dir/fuzz.log" 2>&1 || rc=$?

    local done_line runs rate peak
    done_line=$(grep -E '^#[0-9]+' "$dir/fuzz.log" | tail -1 || true)
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$dir/fuzz.log")
    rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$dir/fuzz.log")
    peak=$(sed -n 's/^stat::peak_rss_mb: *//p' "$dir/fuzz.log")
    echo "    ${runs:-?} runs, ${rate:-?} exec/s, peak RSS ${peak:-?} MB, corpus $seeds -> $(find "$corpus" -type f | wc -l) inputs"
    echo "    last status: ${done_line:-none}"
    if [ $keep_corpus -eq 1 ]; then echo "    corpus kept in $corpus"; fi
    if [ $rc -ne 0 ]; then
        local reproducer
        reproducer=$(sed -n 's/.*Test unit written to \(.*\)$/\1/p' "$dir/fuzz.log" | tail -1)
        echo "!!! fuzz: $name FAILED (exit $rc)"
        # The message and the stack, with Swift symbols demangled when the toolchain has the tool.
        sed -n '/^==[0-9]*==ERROR\|Fatal error\|deadly signal\|ERROR: libFuzzer/,/^SUMMARY\|^MS:/p' "$dir/fuzz.log" |
            grep -v 'rudimentary signal handlers\|Combine libFuzzer with' | head -60 | $demangle
        if [ -n "$reproducer" ] && [ -f "$reproducer" ]; then
            echo "    reproducer: $reproducer ($(wc -c <"$reproducer") bytes)"
            echo "    hex: $(od -An -tx1 -v "$reproducer" | tr -d ' \n' | head -c 2048)"
            echo "    replay: SWIFT_BACKTRACE=enable=no $dir/fuzzer $reproducer"
            echo "    keep it: mkdir -p Fuzz/crashers/$name && cp $reproducer Fuzz/crashers/$name/"
        else
            tail -40 "$dir/fuzz.log"
        fi
        return 1
    fi
}

temp_dirs=()
cleanup() { [ ${#temp_dirs[@]} -eq 0 ] || rm -rf "${temp_dirs[@]}"; }
trap cleanup EXIT

known=()
for line in "${TARGETS[@]}"; do known+=("$(cut -d'|' -f2 <<<"$line")"); done
for name in "${selected[@]}"; do
    [[ " ${known[*]} " == *" $name "* ]] || { echo "fuzz.sh: unknown target $name (known: ${known[*]})" >&2; exit 2; }
done

failed=()
for line in "${TARGETS[@]}"; do
    IFS='|' read -r kind name module sources dependency <<<"$line"
    [ ${#selected[@]} -eq 0 ] || [[ " ${selected[*]} " == *" $name "* ]] || continue
    if ! missing=$(expand "$sources ${dependency#*=}" 2>&1 >/dev/null); then
        missing=$(tr '\n' ' ' <<<"$missing")
        if [ "$kind" = optional ]; then
            echo "==> fuzz: SKIPPING $name: its sources are not in this tree (${missing% })"
            continue
        fi
        echo "!!! fuzz: $name is required but its sources are not in this tree (${missing% })" >&2
        failed+=("$name (sources missing)")
        continue
    fi
    if ! build "$name" "$module" "$sources" "$dependency"; then
        failed+=("$name (build)")
        continue
    fi
    [ $build_only -eq 1 ] || run "$name" || failed+=("$name")
done

if [ ${#failed[@]} -gt 0 ]; then
    echo "!!! fuzz: failed: ${failed[*]}" >&2
    exit 1
fi
echo "==> fuzz: all targets passed"
