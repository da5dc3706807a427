#!/usr/bin/env python3
"""Pura soak (issue 12, "How it is tested"): a release gateway and the fake upstream under a
steady mixed load for a while (10 minutes by default), its RSS sampled from /proc every 10 s
and every error counted; prints a table and appends it to bench/results.md.

The load, paced (not flat out): OpenAI chat and Anthropic Messages, JSON and streamed, over
keep-alive connections; one client that opens a new connection for every request; and a
batch of connections that send one request and then sit idle (until the gateway's keep-alive
closes them), opened again every 30 s. Uses bench/bench.py's helpers; standard library only.
Not in CI. Usage: bench/soak.py [--target-dir /work/target-rel] [--minutes 10]
"""

import argparse
import datetime
import http.client
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import (ANTHROPIC_MODEL, OPENAI_MODEL, PROMPT, ROOT, SEED_KEYS,  # noqa: E402
                   Service, git_commit, log, mint, pura_config, rss_kib)

SAMPLE_EVERY = 10.0
IDLE_BATCH = 50
IDLE_EVERY = 30.0

KINDS = [
    # (name, path, body, stream, how a complete answer ends)
    ("openai", "/v1/chat/completions", {"model": OPENAI_MODEL, "messages": PROMPT}, False, None),
    ("openai-stream", "/v1/chat/completions",
     {"model": OPENAI_MODEL, "messages": PROMPT, "stream": True}, True, b"data: [DONE]"),
    ("anthropic", "/v1/messages",
     {"model": ANTHROPIC_MODEL, "max_tokens": 256, "messages": PROMPT}, False, None),
    ("anthropic-stream", "/v1/messages",
     {"model": ANTHROPIC_MODEL, "max_tokens": 256, "messages": PROMPT, "stream": True}, True,
     b"event: message_stop"),
]


class Counts:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = 0
        self.errors = {}

    def add(self, error=None):
        with self.lock:
            if error is None:
                self.ok += 1
            else:
                self.errors[error] = self.errors.get(error, 0) + 1

    def snapshot(self):
        with self.lock:
            return self.ok, sum(self.errors.values()), dict(self.errors)


def one(conn, key, kind):
    """Sends one request of `kind` on `conn`; None when it was answered in full, else why not."""
    name, path, body, stream, end = kind
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    if name.startswith("anthropic"):
        headers["anthropic-version"] = "2023-06-01"
    conn.request("POST", path, body=json.dumps(body), headers=headers)
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        return f"{name}: HTTP {resp.status}"
    if stream:
        return None if end in data else f"{name}: stream without its end"
    try:
        json.loads(data)
    except ValueError:
        return f"{name}: body is not JSON"
    return None


def client(url, key, rate, stop, counts, fresh_each):
    """Paced at `rate` requests/s, cycling through every kind."""
    u = urllib.parse.urlparse(url)
    conn, i, next_at = None, 0, time.monotonic()
    while not stop.is_set():
        if conn is None or fresh_each:
            if conn is not None:
                conn.close()
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
        try:
            counts.add(one(conn, key, KINDS[i % len(KINDS)]))
        except (OSError, http.client.HTTPException) as e:
            counts.add(f"{KINDS[i % len(KINDS)][0]}: {type(e).__name__}")
            conn.close()
            conn = None
        i += 1
        next_at += 1.0 / rate
        time.sleep(max(0.0, next_at - time.monotonic()))
    if conn is not None:
        conn.close()


def idlers(url, key, stop, counts, held):
    """Every IDLE_EVERY s, IDLE_BATCH connections send one request each and then say nothing."""
    u = urllib.parse.urlparse(url)
    while not stop.is_set():
        for old in held:
            old.close()
        held.clear()
        for n in range(IDLE_BATCH):
            conn = http.client.HTTPConnection(u.hostname, u.port, timeout=60)
            try:
                counts.add(one(conn, key, KINDS[n % len(KINDS)]))
                held.append(conn)
            except (OSError, http.client.HTTPException) as e:
                counts.add(f"idle: {type(e).__name__}")
        stop.wait(IDLE_EVERY)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target-dir", default=os.environ.get("CARGO_TARGET_DIR", "/work/target-rel"))
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--clients", type=int, default=4, help="keep-alive clients")
    ap.add_argument("--rate", type=float, default=25.0, help="requests/s per client")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results.md"))
    args = ap.parse_args()

    rel = os.path.join(args.target_dir, "release")
    tmp = tempfile.mkdtemp(prefix="pura-soak-")
    services = []
    try:
        up = Service("upstream", [os.path.join(rel, "examples", "bench_upstream"), "--workers", "1",
                                  "--chunks", "8", "--chunk-delay-ms", "5"],
                     None, tmp, ready=r"listening on (http://\S+)")
        services.append(up)
        env = {k: v for k, v in os.environ.items() if k not in SEED_KEYS and not k.startswith("PURA")}
        env["RUST_LOG"] = "warn"
        pura = Service("pura", [os.path.join(rel, "pura"), "--config",
                                pura_config(tmp, up.url, args.workers)],
                       None, tmp, env=env, ready=r"pura listening on (http://\S+)")
        services.append(pura)
        key = mint(pura.url, "soak")
        counts, stop, held = Counts(), threading.Event(), []
        threads = [threading.Thread(target=client, args=(pura.url, key, args.rate, stop, counts, False))
                   for _ in range(args.clients)]
        threads.append(threading.Thread(target=client, args=(pura.url, key, 2.0, stop, counts, True)))
        threads.append(threading.Thread(target=idlers, args=(pura.url, key, stop, counts, held)))
        idle_rss = rss_kib(pura.pid)
        log(f"soak: {args.minutes} min, {args.clients} clients at {args.rate}/s + 1 new-connection "
            f"client at 2/s + {IDLE_BATCH} idle connections every {IDLE_EVERY:.0f}s; idle RSS "
            f"{idle_rss / 1024:.1f} MiB")
        started = time.monotonic()
        for t in threads:
            t.start()
        samples = []
        while True:
            time.sleep(SAMPLE_EVERY)
            elapsed = time.monotonic() - started
            ok, errors, _ = counts.snapshot()
            alive = pura.alive()
            samples.append((elapsed, rss_kib(pura.pid) if alive else 0, ok, errors))
            log(f"t={elapsed:5.0f}s RSS {samples[-1][1] / 1024:6.1f} MiB, {ok} ok, {errors} errors")
            if not alive or elapsed >= args.minutes * 60:
                break
        stop.set()
        for t in threads:
            t.join(timeout=90)
        ok, errors, kinds = counts.snapshot()
        report(args, idle_rss, samples, ok, errors, kinds, pura.alive())
    finally:
        for s in reversed(services):
            s.stop()


def binary_commit(target_dir):
    """The checkout a target dir's binaries were built from: /work/target-rel is main's."""
    source = "/work/main" if os.path.abspath(target_dir) == "/work/target-rel" else ROOT
    try:
        return "main " + subprocess.run(["git", "-C", source, "rev-parse", "--short", "HEAD"],
                                        capture_output=True, text=True).stdout.strip() \
            if source == "/work/main" else git_commit()
    except OSError:
        return "unknown"


def report(args, idle_rss, samples, ok, errors, kinds, alive):
    mib = [s[1] / 1024 for s in samples]
    # Flat: the last third's mean against the first third's (after warm-up).
    third = max(1, len(mib) // 3)
    early, late = sum(mib[:third]) / third, sum(mib[-third:]) / third
    lines = [
        f"\n## Soak — {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC, "
        f"binaries of `{args.target_dir}` (built from {binary_commit(args.target_dir)})\n",
        f"`bench/soak.py`: release gateway (SQLite, {args.workers} workers) and `bench_upstream` "
        f"(8 chunks, 5 ms apart), {args.minutes:g} min of steady mixed load: {args.clients} "
        f"keep-alive clients at {args.rate:g} req/s each and one client opening a new connection "
        f"per request at 2 req/s, cycling OpenAI chat and Anthropic Messages, JSON and streamed; "
        f"plus {IDLE_BATCH} connections every {IDLE_EVERY:.0f} s that send one request and go idle. "
        f"RSS of the gateway from /proc every {SAMPLE_EVERY:.0f} s (idle before the load: "
        f"{idle_rss / 1024:.1f} MiB).\n",
        "| t (s) | RSS (MiB) | answered in full | errors |",
        "|---:|---:|---:|---:|",
    ]
    lines += [f"| {t:.0f} | {r / 1024:.1f} | {o} | {e} |" for t, r, o, e in samples]
    lines.append("")
    lines.append(f"Requests answered in full: {ok}; errors: {errors}"
                 + (f" ({kinds})" if kinds else "") + f"; gateway alive at the end: {alive}. "
                 f"RSS min {min(mib):.1f}, max {max(mib):.1f} MiB; mean of the first third "
                 f"{early:.1f}, of the last third {late:.1f} MiB ({late - early:+.1f}).\n")
    text = "\n".join(lines)
    print(text)
    with open(args.out, "a") as f:
        f.write(text)


if __name__ == "__main__":
    main()
