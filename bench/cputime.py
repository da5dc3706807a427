#!/usr/bin/env python3
"""CPU time per request, natively (no valgrind): what `instructions.py` counts, as the machine
spends it, kernel included, at native speed, so that the settlement writer batches as it
does in service (under callgrind everything runs ~50x slower and a batch holds a few rows).

    bench/cputime.py [--requests N] [--target-dir DIR]

Sums the on-CPU time of every thread of the process (`/proc/PID/task/*/schedstat`, in ns)
across N sequential requests over one keep-alive connection (and the wall time each took), for the fake upstream alone and
through Pura (non-streaming, free and paid key; streams of 10 and 50 chunks). Loopback TCP
work is charged partly to the sender's threads, so compare figures of one machine, not
machines. Prints a Markdown table (also written to bench/out/cputime.md)."""

import argparse
import glob
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402
from instructions import send  # noqa: E402


def cpu_ns(pid):
    total = 0
    for path in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(path) as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that ended meanwhile
    return total


def measure(proc, fn, n, warmup):
    """(CPU µs, wall µs) per request."""
    fn(warmup)
    before, started = cpu_ns(proc.proc.pid), time.monotonic()
    fn(n)
    wall = (time.monotonic() - started) / n * 1e6
    return (cpu_ns(proc.proc.pid) - before) / n / 1000.0, wall


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--target-dir", default=os.path.join(bench.ROOT, "target"))
    args = ap.parse_args()
    rel = os.path.join(args.target_dir, "release")
    out_dir = os.path.join(bench.ROOT, "bench", "out")
    os.makedirs(out_dir, exist_ok=True)
    env = {k: v for k, v in os.environ.items()
           if k not in bench.SEED_KEYS and not k.startswith("PURA")}
    env["RUST_LOG"] = "info"
    env["PURA_ADMIN_TOKEN"] = "bench-admin"
    n, warm = args.requests, max(args.requests // 10, 50)
    body = {"model": bench.OPENAI_MODEL, "messages": bench.PROMPT}
    rows = []

    def upstream(chunks):
        return bench.Service(f"cpu-upstream-{chunks}",
                             [os.path.join(rel, "examples", "bench_upstream"), "--workers", "1",
                              "--chunks", str(chunks), "--chunk-delay-ms", "0"],
                             None, out_dir, ready=r"listening on (http://\S+)")

    up = upstream(50)
    try:
        h = {"content-type": "application/json", "authorization": "Bearer bench"}
        rows.append(("fake upstream alone, non-streaming",
                     measure(up, lambda k: send(up.url, "/v1/chat/completions", body, h, k), n, warm)))
    finally:
        up.stop()

    for chunks in (10, 50):
        up = upstream(chunks)
        tmp = tempfile.mkdtemp(prefix="pura-cpu-")
        cfg = bench.pura_config(tmp, up.url, 1)
        pura = bench.Service(f"cpu-pura-{chunks}", [os.path.join(rel, "pura"), "--config", cfg],
                             None, out_dir, env=env, ready=r"pura listening on (http://\S+)")
        try:
            status, raw = bench.http("POST", pura.url + "/api/keys", {"label": "cpu"})
            if status != 201:
                raise RuntimeError(f"POST /api/keys answered {status}")
            minted = json.loads(raw)
            h = {"content-type": "application/json", "authorization": f"Bearer {minted['key']}"}
            if chunks == 50:
                rows.append(("through Pura, non-streaming", measure(
                    pura, lambda k: send(pura.url, "/v1/chat/completions", body, h, k), n, warm)))
            sbody = dict(body, stream=True)
            rows.append((f"through Pura, stream of {chunks} chunks", measure(
                pura, lambda k: send(pura.url, "/v1/chat/completions", sbody, h, k),
                n // 5, warm // 5)))
        finally:
            pura.stop()
            up.stop()

    lines = ["| measure | CPU µs per request | wall µs per request |", "|---|---:|---:|"]
    lines += [f"| {name} | {cpu:,.1f} | {wall:,.0f} |" for name, (cpu, wall) in rows]
    by = {name: cpu for name, (cpu, _) in rows}
    s10, s50 = by["through Pura, stream of 10 chunks"], by["through Pura, stream of 50 chunks"]
    lines.append(f"| per relayed stream chunk ((50 − 10 chunks) / 40) | {(s50 - s10) / 40:,.2f} | |")
    ratio = by["through Pura, non-streaming"] / by["fake upstream alone, non-streaming"]
    lines.append(f"| Pura non-streaming ÷ fake upstream alone | {ratio:.2f}× | |")
    text = "\n".join(lines)
    with open(os.path.join(out_dir, "cputime.md"), "w") as f:
        f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
