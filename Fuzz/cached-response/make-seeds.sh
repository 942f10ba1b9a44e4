#!/usr/bin/env bash
# Writes Fuzz/corpus/cached-response/: stored entries in the format of
# Sources/GatewayCore/CachedResponse.swift ("CG" 0x02 | storedAt u64 | expiresAt u64 |
# staleWhileRevalidateUntil u64 | staleIfErrorUntil u64 | status u16 |
# header count u16 | (name length u16, name, value length u32, value)* | body length u32 | body),
# valid ones and a few near misses. Rerun after a format change.
set -euo pipefail
export LC_ALL=C
out="$(cd "$(dirname "$0")/.." && pwd)/corpus/cached-response"
mkdir -p "$out"

be() { printf "%0$(($2 * 2))x" "$1" | tail -c $(($2 * 2)); }   # be VALUE BYTES: big-endian hex
hex() { printf '%s' "$1" | od -An -tx1 -v | tr -d ' \n'; }      # hex STRING
write() { printf "$(sed 's/../\\x&/g' <<<"$2")" >"$out/$1"; }    # write FILE HEX

# entry STATUS STORED EXPIRES BODYHEX [NAME VALUE]...: the encoding, as hex. The stale windows are
# SWR and SIE from the environment (default: none, i.e. equal to EXPIRES).
entry() {
    local status=$1 stored=$2 expires=$3 body=$4 s
    shift 4
    s="434702$(be "$stored" 8)$(be "$expires" 8)$(be "${SWR:-$expires}" 8)$(be "${SIE:-$expires}" 8)"
    s+="$(be "$status" 2)$(be $(($# / 2)) 2)"
    while [ $# -ge 2 ]; do
        s+="$(be ${#1} 2)$(hex "$1")$(be ${#2} 4)$(hex "$2")"
        shift 2
    done
    printf '%s%s%s' "$s" "$(be $((${#body} / 2)) 4)" "$body"
}

t=1764576000000  # 2025-12-01 in ms
write ok-200-empty "$(entry 200 $t $((t + 60000)) '')"
write ok-200-html "$(entry 200 $t $((t + 300000)) "$(hex '<html>hello</html>')" \
    Content-Type 'text/html; charset=utf-8' ETag '"abc123"' Cache-Control 'public, max-age=300')"
(SWR=$((t + 90000)) SIE=$((t + 600000)); write ok-stale-windows "$(entry 200 $t $((t + 60000)) "$(hex 'stale ok')" ETag '"v2"')")
write ok-404 "$(entry 404 $t $((t + 10000)) "$(hex 'not found')" Content-Type text/plain)"
write ok-301-location "$(entry 301 $t $((t + 86400000)) '' Location 'https://example.com/new')"
write ok-never-expires "$(entry 200 $t -1 "$(hex x)" Vary Accept-Encoding)"
write ok-zero-times "$(entry 100 0 0 '')"
write ok-599 "$(entry 599 $t $t '' X-Empty '')"
write ok-binary-body "$(entry 200 $t $((t + 1)) 00ff7f80c3a90d0a00 Content-Type application/octet-stream)"
write ok-utf8-header "$(entry 200 $t $((t + 1)) '' X-Name 'café ☕' Content-Language fr)"
write ok-invalid-utf8-header "$(entry 200 $t $((t + 1)) '' X-Raw "$(printf 'a\xffb\xc3')")"
write ok-many-headers "$(entry 200 $t $((t + 5000)) "$(hex '{"ok":true}')" \
    Content-Type application/json Cache-Control max-age=5 Date 'Mon, 01 Dec 2025 08:00:00 GMT' \
    Last-Modified 'Sun, 30 Nov 2025 08:00:00 GMT' ETag 'W/"1"' Vary 'Accept, Accept-Encoding' \
    X-Request-Id 0123456789abcdef Set-Cookie-Stripped no Link '</a.css>; rel=preload' Content-Encoding gzip)"
write ok-repeated-header "$(entry 200 $t $((t + 1)) '' Vary Accept Vary Cookie Vary Origin)"

# Near misses: each must be a miss.
valid="$(entry 200 $t $((t + 60000)) "$(hex hello)" Content-Type text/plain)"
write bad-version "${valid/#434702/434701}"
(SWR=$((t - 1)); write bad-swr-before-expiry "$(entry 200 $t $t '')")
(SIE=0; write bad-sie-before-expiry "$(entry 200 $t $t '')")
write bad-truncated "${valid:0:$((${#valid} - 4))}"
write bad-trailing-byte "${valid}00"
write bad-status-600 "$(entry 600 $t $t '')"
write bad-status-99 "$(entry 99 $t $t '')"
write bad-header-count "434702$(be $t 8)$(be $t 8)$(be $t 8)$(be $t 8)$(be 200 2)$(be 3 2)$(be 1 2)61$(be 1 4)62$(be 0 4)"
write bad-body-length-max "434702$(be $t 8)$(be $t 8)$(be $t 8)$(be $t 8)$(be 200 2)$(be 0 2)ffffffff61"
write bad-empty ""
write bad-magic-only 434702
