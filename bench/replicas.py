#!/usr/bin/env python3
"""What the replica arbiter costs: paid requests through Pura on PostgreSQL with
`database.arbitrate = false` (one replica, money in its BudgetActors only) and `true` (every
reservation held and checked in the database), on one replica and on two sharing the database.

    CARGO_TARGET_DIR=... python3 bench/replicas.py [--requests 2000] [--seconds 5]

Needs the release binaries (`cargo build --release --bin pura --example bench_upstream`) and
PostgreSQL at 127.0.0.1:5432 (a database per run, dropped after). Sequential latency (one
keep-alive connection) and closed-loop throughput (8 client threads); clients round-robin over
the replicas. Standard library only; loopback only; bounded in time.
"""

import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (Service, pura_config, http)

ADMIN = "bench-admin-token"
PG = "postgres://postgres@127.0.0.1:5432"
BODY = json.dumps({"model": bench.OPENAI_MODEL, "messages": bench.PROMPT, "max_tokens": 16})


def psql(sql):
    subprocess.run(["psql", f"{PG}/postgres", "-qc", sql], check=True, capture_output=True)


def config(tmp, upstream, db, arbitrate):
    path = bench.pura_config(tmp, upstream, workers=1)
    text = open(path).read()
    text = text.replace(f'url = "sqlite://{os.path.join(tmp, "pura.db")}"',
                        f'url = "{PG}/{db}"\narbitrate = {str(arbitrate).lower()}')
    # Paid requests: the path the arbiter guards.
    text = text.replace("requests = 1000000000000", "requests = 0")
    open(path, "w").write(text)
    return path


def post(conn, key):
    conn.request("POST", "/v1/chat/completions", BODY,
                 {"authorization": f"Bearer {key}", "content-type": "application/json"})
    r = conn.getresponse()
    r.read()
    return r.status


def conns(urls):
    out = []
    for u in urls:
        host, port = u.removeprefix("http://").split(":")
        out.append(http.client.HTTPConnection(host, int(port), timeout=30))
    return out


def sequential(urls, key, n):
    cs, lat = conns(urls), []
    for i in range(n):
        t = time.perf_counter()
        status = post(cs[i % len(cs)], key)
        lat.append((time.perf_counter() - t) * 1000)
        if status != 200:
            raise RuntimeError(f"request answered {status}")
    lat.sort()
    return statistics.median(lat), lat[int(len(lat) * 0.99) - 1]


def closed_loop(urls, key, seconds, threads=8):
    done, stop = [0] * threads, time.monotonic() + seconds

    def run(i):
        c = conns(urls)[i % len(urls)]
        while time.monotonic() < stop:
            if post(c, key) == 200:
                done[i] += 1

    ts = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(done) / seconds


def scenario(tmp, bins, upstream, arbitrate, replicas, args):
    db = f"pura_bench_{int(time.time())}_{replicas}_{int(arbitrate)}"
    psql(f"CREATE DATABASE {db}")
    services = []
    try:
        env = dict(os.environ, PURA_ADMIN_TOKEN=ADMIN, RUST_LOG="warn")
        for k in bench.SEED_KEYS:
            env.pop(k, None)
        for r in range(replicas):
            d = os.path.join(tmp, f"{db}-{r}")
            os.makedirs(d)
            cfg = config(d, upstream, db, arbitrate)
            services.append(bench.Service(f"pura-{db}-{r}", [bins["pura"], "--config", cfg], None,
                                          tmp, env=env, ready=r"pura listening on (http://\S+)"))
        urls = [s.url for s in services]
        status, body = bench.http("POST", urls[0] + "/api/keys", {"label": "bench"})
        key, key_id = json.loads(body)["key"], json.loads(body)["id"]
        bench.http("POST", f"{urls[0]}/api/admin/keys/{key_id}/credit", {"sats": 100_000_000},
                   {"authorization": f"Bearer {ADMIN}"})
        sequential(urls, key, 200)  # warm-up: connections, actors, key caches
        p50, p99 = sequential(urls, key, args.requests)
        rps = closed_loop(urls, key, args.seconds)
        return {"arbitrate": arbitrate, "replicas": replicas, "p50": p50, "p99": p99, "rps": rps}
    finally:
        for s in services:
            s.stop()
        psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target-dir", default=os.environ.get("CARGO_TARGET_DIR",
                                                           os.path.join(bench.ROOT, "target")))
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--seconds", type=int, default=5)
    args = ap.parse_args()
    rel = os.path.join(args.target_dir, "release")
    bins = {"pura": os.path.join(rel, "pura"),
            "upstream": os.path.join(rel, "examples", "bench_upstream")}
    with tempfile.TemporaryDirectory() as tmp:
        up = bench.Service("upstream", [bins["upstream"], "--workers", "1"], None, tmp,
                           ready=r"listening on (http://\S+)")
        try:
            rows = [scenario(tmp, bins, up.url, a, n, args)
                    for a, n in [(False, 1), (True, 1), (True, 2)]]
        finally:
            up.stop()
    print("| database.arbitrate | replicas | p50 ms (sequential) | p99 ms | req/s (8 clients) |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {str(r['arbitrate']).lower()} | {r['replicas']} | {r['p50']:.3f} | "
              f"{r['p99']:.3f} | {r['rps']:.0f} |")


if __name__ == "__main__":
    main()
