# Sourced by the measurement scripts here (from the repository root): the release binaries, a
# temporary folder, and the processes started, stopped by pid when the script exits.
swift build -c release --product gateway >/dev/null
swift build -c release --product demo-monolith >/dev/null
BIN=$(swift build -c release --show-bin-path)
tmp=$(mktemp -d); pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$tmp"; }
trap cleanup EXIT
# A port the kernel picked (free when asked; a later bind can still lose a race, rarely).
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# A redis-server of the script's own on $1, and the demo monolith (no delay) on $2.
start_redis_and_backend() {
    redis-server --port "$1" --bind 127.0.0.1 --save '' --appendonly no >"$tmp/redis.log" 2>&1 & pids+=($!)
    "$BIN/demo-monolith" --port "$2" --delay 0 >"$tmp/backend.log" 2>&1 & pids+=($!)
}
