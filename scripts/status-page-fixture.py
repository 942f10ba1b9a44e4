#!/usr/bin/env python3
"""Serves the status page with a moving stats fixture, for screenshots and for working on the
page before the metrics' per-route stats are plugged in.

Usage: scripts/status-page-fixture.py ADMIN_PORT [LISTEN_PORT]
  FAIL_AFTER=N in the environment: /stats answers 503 after N answers (the page's stale state)
  GET /       the page, fetched from a running gateway's admin listener on 127.0.0.1:ADMIN_PORT
  GET /stats  the stats JSON schema the page reads, with three routes whose counters grow
              by one simulated second each time it is asked, so that a headless browser
              running on virtual time (--virtual-time-budget) sees steady 1 s polls
"""
import json, math, os, random, sys, time, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ADMIN = int(sys.argv[1])
PORT = int(sys.argv[2]) if len(sys.argv) > 2 else 0
LE = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5]
START = time.time()
FAIL_AFTER = int(os.environ.get("FAIL_AFTER", "0")) or None
answered = [0]
random.seed(7)

# name: (requests per second, share of each outcome, latency per outcome in seconds)
ROUTES = {
    "catalog": (820, {"hit": .91, "miss": .015, "stale": .04, "collapsed": .03, "revalidated": .005}),
    "user-resources": (240, {"hit": .72, "miss": .12, "collapsed": .06, "bypass": .1}),
    "everything-else": (60, {"bypass": .985, "error": .015}),
}
LATENCY = {"hit": .0004, "local": .0001, "stale": .0005, "collapsed": .31, "miss": .30, "revalidated": .05,
           "bypass": .12, "error": .5, "rejected": .0002}
state = {name: {"requests": {k: 0 for k in LATENCY}, "counts": [0] * len(LE), "count": 0, "sum": 0.0} for name in ROUTES}
clock = [START]


def advance():
    dt = 1.0
    clock[0] += dt
    now = clock[0]
    wave = 1 + 0.25 * math.sin((now - START) / 9)
    for name, (rate, mix) in ROUTES.items():
        s = state[name]
        for outcome, share in mix.items():
            n = int(rate * wave * share * dt + random.random())
            s["requests"][outcome] += n
            for _ in range(min(n, 400)):
                latency = LATENCY[outcome] * random.lognormvariate(0, 0.5)
                s["count"] += 1
                s["sum"] += latency
                for i, bound in enumerate(LE):
                    if latency <= bound:
                        s["counts"][i] += 1
            if n > 400:  # the rest of a big batch, at the outcome's typical latency
                i = next((i for i, b in enumerate(LE) if LATENCY[outcome] <= b), len(LE) - 1)
                s["count"] += n - 400
                s["sum"] += (n - 400) * LATENCY[outcome]
                for j in range(i, len(LE)):
                    s["counts"][j] += n - 400


def stats():
    advance()
    totals = {k: 0 for k in ["hits", "misses", "collapsed", "bypassed", "redis_errors", "upstream_errors", "purged",
                             "store_errors", "stale", "refreshes", "revalidated", "poison_events", "reloads"]}
    for s in state.values():
        r = s["requests"]
        totals["hits"] += r["hit"]; totals["misses"] += r["miss"]; totals["collapsed"] += r["collapsed"]
        totals["bypassed"] += r["bypass"]; totals["stale"] += r["stale"]; totals["revalidated"] += r["revalidated"]
        totals["upstream_errors"] += r["error"]
    totals["refreshes"] = totals["stale"] // 20
    totals["purged"] = 37
    totals["reloads"] = 1
    up = clock[0] - START + 7260
    return {
        "version": "0.7.0", "uptime_seconds": round(up, 1), "time_ms": int(clock[0] * 1000),
        "totals": totals,
        "routes": [{"name": n, "requests": dict(s["requests"]),
                    "latency": {"le_seconds": LE, "counts": list(s["counts"]), "count": s["count"], "sum_seconds": s["sum"]}}
                   for n, s in state.items()],
        "in_flight_keys": random.randint(2, 9), "uncacheable_keys": 3, "open_connections": 64 + random.randint(0, 6),
        "upstream": {"in_flight": random.randint(3, 12), "queued": 0, "max_connections": 64},
        "redis": {"loops": 2, "connected_loops": 2, "errors": 0},
        "local_tier": {"hits": totals["hits"] // 3, "entries": 812, "bytes": 3_400_000, "evictions": 120},
        "stream": {"applied": 41, "poison": 0, "retried": 1, "claimed": 0, "lag": 0, "connected": True},
        "last_reload": {"time_ms": int((START - 1260) * 1000), "ok": True, "errors": []},
    }


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/stats":
            answered[0] += 1
            if FAIL_AFTER is not None and answered[0] > FAIL_AFTER:
                self.send_error(503)
                return
            body, kind = json.dumps(stats()).encode(), "application/json"
        elif self.path == "/":
            with urllib.request.urlopen(f"http://127.0.0.1:{ADMIN}/", timeout=5) as page:
                body, kind = page.read(), "text/html; charset=utf-8"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", PORT), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
