#!/usr/bin/env python3
"""CPU instructions per request, counted by callgrind (steady on a noisy machine, unlike latency).

    bench/instructions.py [--requests N] [--target-dir DIR] [--vector-string-ops]

Runs the release `pura` and the fake upstream (examples/bench_upstream) each under
`valgrind --tool=callgrind`, warms up, zeroes the counters (`callgrind_control --zero`), sends N
requests over one keep-alive connection, dumps (`callgrind_control --dump`) and divides the
process's total instructions by N. Measured: non-streaming through Pura (a free-tier key, and a
paid key whose settlement debits a balance) and straight at the fake upstream; streams of 10 and of 50 chunks through Pura, whose difference gives the cost
per relayed chunk and the fixed cost per streamed request. The same through a bare actix-web + awc
forwarder (examples/bench_floor: no auth, budget, routing, parsing or usage row) gives the floor
the stack itself sets. Everything stays on 127.0.0.1.
Prints a Markdown table (also written to bench/out/instructions.md)."""

import argparse
import glob
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (Service, pura_config, mint, PROMPT, OPENAI_MODEL)

CALLGRIND = ["valgrind", "--tool=callgrind", "--collect-atstart=yes"]

# Above 2 KiB glibc's memset and memcpy use `rep stosb` / `rep movsb`, one instruction to the
# CPU, but valgrind counts each byte it stores as an instruction: a 3 KiB memset is counted as
# 3,088 instructions, and about 190 on the vector loop (measured on this machine). actix-http
# zeroes a 3 KiB array of header indices each time it tries to parse a request head (six
# times per request here), so the raw figures carry about 21,000 such "instructions" per
# request, Pura's and the bare forwarder's alike. Raising the thresholds
# keeps glibc on its vector loops, whose instructions valgrind counts as the CPU runs them.
VECTOR_STRING_OPS = ("glibc.cpu.x86_rep_stosb_threshold=0x1000000000:"
                     "glibc.cpu.x86_rep_movsb_threshold=0x1000000000")


def send(url, path, body, headers, n):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=120)
    data = json.dumps(body)
    for _ in range(n):
        conn.request("POST", path, body=data, headers=headers)
        resp = conn.getresponse()
        payload = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"{path} answered {resp.status}: {payload[:200]!r}")
    conn.close()


# Settlements commit in the background (the writer folds a window of them), so the warm-up's
# must land before the counters are zeroed and the measured ones before the dump: otherwise a
# window holds more or fewer commits than its own requests made (under valgrind, which runs
# ~50x slower, 0.5 s was not always enough: the 10-chunk stream's figure moved by 10%).
SETTLE_S = 1.5


def measure(proc, out_dir, tag, fn, n, warmup):
    fn(warmup)
    time.sleep(SETTLE_S)
    for old in glob.glob(os.path.join(out_dir, f"{tag}.*")):
        os.remove(old)
    subprocess.run(["callgrind_control", "--zero", str(proc.pid)], check=True,
                   stdout=subprocess.DEVNULL)
    fn(n)
    time.sleep(SETTLE_S)  # the last settlements' group commit lands inside the window
    subprocess.run(["callgrind_control", "--dump=" + tag, str(proc.pid)], check=True,
                   stdout=subprocess.DEVNULL)
    time.sleep(1.0)
    return dump_total(out_dir, tag) / n


def dump_total(out_dir, tag):
    # callgrind names a dump `<out-file>.<n>` and marks it with `desc: Trigger: ... <tag>`.
    total = 0
    for path in glob.glob(os.path.join(out_dir, "callgrind.out*")):
        with open(path) as f:
            head = f.read(4096)
        if tag not in head:
            continue
        with open(path) as f:
            for line in f:
                if line.startswith("summary:") or line.startswith("totals:"):
                    total += int(line.split()[1])
                    break
        os.rename(path, os.path.join(out_dir, f"{tag}.callgrind"))
    if total == 0:
        raise RuntimeError(f"no callgrind dump found for {tag} in {out_dir}")
    return total


def writer_share(out_dir, tag):
    """Instructions of the dump `tag` spent on the settlement writer's thread (its entry, which
    `callgrind_annotate --inclusive` counts with all it calls), or None where it is not found.
    The writer folds a batch of about a hundred settlements at a time, so its share moves with
    where each batch's B-tree pages split: ±2,000 per request between runs of the same code,
    most of the spread of the totals."""
    try:
        out = subprocess.run(["callgrind_annotate", "--inclusive=yes", "--threshold=100",
                              os.path.join(out_dir, f"{tag}.callgrind")],
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    best = None
    for line in out.splitlines():
        if "usage_writer" in line and "__rust_begin_short_backtrace" in line:
            cost = int(line.split()[0].replace(",", ""))
            best = cost if best is None else max(best, cost)
    return best


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=500)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--target-dir", default=os.path.join(bench.ROOT, "target"))
    ap.add_argument("--vector-string-ops", action="store_true",
                    help="run every process with glibc's memset/memcpy kept off `rep stosb` / "
                         "`rep movsb` (GLIBC_TUNABLES); see VECTOR_STRING_OPS")
    args = ap.parse_args()
    if args.vector_string_ops:
        os.environ["GLIBC_TUNABLES"] = VECTOR_STRING_OPS
    rel = os.path.join(args.target_dir, "release")
    out_dir = os.path.join(bench.ROOT, "bench", "out", "callgrind")
    os.makedirs(out_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix="pura-instr-")
    rows = []
    env = {k: v for k, v in os.environ.items()
           if k not in bench.SEED_KEYS and not k.startswith("PURA")}
    env["RUST_LOG"] = "info"

    def upstream(chunks):
        return [os.path.join(rel, "examples", "bench_upstream"), "--workers", "1",
                "--chunks", str(chunks), "--chunk-delay-ms", "0"]

    body = {"model": bench.OPENAI_MODEL, "messages": bench.PROMPT}
    direct_h = {"content-type": "application/json", "authorization": "Bearer bench"}

    def json_and_stream(svc, tag, label, headers, chunks):
        """Rows for `svc` (a gateway under callgrind): streams of `chunks` chunks, and at 50 the
        non-streaming request too."""
        out = []
        if chunks == 50:
            per = measure(svc, out_dir, f"{tag}_json",
                          lambda n: send(svc.url, "/v1/chat/completions", body, headers, n),
                          args.requests, args.warmup)
            out.append((f"{label}, non-streaming", per))
        sbody = dict(body, stream=True)
        per = measure(svc, out_dir, f"{tag}_stream{chunks}",
                      lambda n: send(svc.url, "/v1/chat/completions", sbody, headers, n),
                      max(args.requests // 5, 50), max(args.requests // 5, 50))
        out.append((f"{label}, stream of {chunks} chunks", per))
        return out

    # The fake upstream alone, under callgrind.
    cg = CALLGRIND + ["--callgrind-out-file=" + os.path.join(out_dir, "callgrind.out.upstream")]
    up = bench.Service("upstream-cg", cg + upstream(50), None, out_dir,
                       ready=r"listening on (http://\S+)", timeout=300)
    try:
        per = measure(up, out_dir, "direct_json",
                      lambda n: send(up.url, "/v1/chat/completions", body, direct_h, n),
                      args.requests, args.warmup)
        rows.append(("fake upstream alone, non-streaming", per))
    finally:
        up.stop()

    for chunks in (10, 50):
        up = bench.Service(f"upstream-{chunks}", upstream(chunks), None, out_dir,
                           ready=r"listening on (http://\S+)")
        cfg = bench.pura_config(tmp, up.url, 1)
        cg = CALLGRIND + ["--callgrind-out-file=" + os.path.join(out_dir, f"callgrind.out.pura{chunks}")]
        pura = bench.Service(f"pura-cg-{chunks}", cg + [os.path.join(rel, "pura"), "--config", cfg],
                             None, out_dir, env=env, ready=r"pura listening on (http://\S+)",
                             timeout=300)
        try:
            # Under callgrind everything runs ~50x slower: mint with a patient client.
            status, raw = bench.http("POST", pura.url + "/api/keys", {"label": "instructions"}, timeout=300)
            if status != 201:
                raise RuntimeError(f"POST /api/keys answered {status}")
            key = json.loads(raw)["key"]
            h = {"content-type": "application/json", "authorization": f"Bearer {key}"}
            rows.extend(json_and_stream(pura, "pura", "through Pura", h, chunks))
        finally:
            pura.stop()
            up.stop()

    # The floor: a bare actix-web + awc forwarder (examples/bench_floor) over the same upstream,
    # the least any gateway on this stack spends; Pura's figures less these are its own work.
    for chunks in (10, 50):
        up = bench.Service(f"upstream-floor-{chunks}", upstream(chunks), None, out_dir,
                           ready=r"listening on (http://\S+)")
        cg = CALLGRIND + ["--callgrind-out-file=" + os.path.join(out_dir, f"callgrind.out.floor{chunks}")]
        floor = bench.Service(f"floor-cg-{chunks}",
                              cg + [os.path.join(rel, "examples", "bench_floor"),
                                    "--upstream", up.url, "--workers", "1"],
                              None, out_dir, ready=r"listening on (http://\S+)", timeout=300)
        try:
            rows.extend(json_and_stream(floor, "floor", "bare actix-web + awc forwarder",
                                        direct_h, chunks))
        finally:
            floor.stop()
            up.stop()

    # The same non-streaming request from a key past its free tier: its settlement debits the
    # account's balance and writes a ledger entry instead of counting a free request.
    up = bench.Service("upstream-paid", upstream(50), None, out_dir,
                       ready=r"listening on (http://\S+)")
    paid_tmp = tempfile.mkdtemp(prefix="pura-instr-paid-")
    cfg = bench.pura_config(paid_tmp, up.url, 1)
    with open(cfg) as f:
        text = f.read().replace("requests = 1000000000000", "requests = 0")
    with open(cfg, "w") as f:
        f.write(text)
    cg = CALLGRIND + ["--callgrind-out-file=" + os.path.join(out_dir, "callgrind.out.paid")]
    paid_env = dict(env, PURA_ADMIN_TOKEN="bench-admin")
    pura = bench.Service("pura-cg-paid", cg + [os.path.join(rel, "pura"), "--config", cfg],
                         None, out_dir, env=paid_env, ready=r"pura listening on (http://\S+)",
                         timeout=300)
    try:
        status, raw = bench.http("POST", pura.url + "/api/keys", {"label": "paid"}, timeout=300)
        if status != 201:
            raise RuntimeError(f"POST /api/keys answered {status}")
        minted = json.loads(raw)
        status, _ = bench.http("POST", f"{pura.url}/api/admin/keys/{minted['id']}/credit",
                               {"sats": 1_000_000, "memo": "instructions"},
                               {"authorization": "Bearer bench-admin"}, timeout=300)
        if status != 200:
            raise RuntimeError(f"admin credit answered {status}")
        h = {"content-type": "application/json", "authorization": f"Bearer {minted['key']}"}
        per = measure(pura, out_dir, "pura_json_paid",
                      lambda n: send(pura.url, "/v1/chat/completions", body, h, n),
                      args.requests, args.warmup)
        rows.append(("through Pura, non-streaming, paid key", per))
    finally:
        pura.stop()
        up.stop()

    by = dict(rows)
    s10, s50 = by["through Pura, stream of 10 chunks"], by["through Pura, stream of 50 chunks"]
    per_chunk = (s50 - s10) / 40
    fixed = s10 - 10 * per_chunk
    lines = ["| measure | instructions |", "|---|---:|"]
    lines += [f"| {name} per request | {v:,.0f} |" for name, v in rows]
    lines.append(f"| per relayed stream chunk ((50 − 10 chunks) / 40) | {per_chunk:,.0f} |")
    lines.append(f"| fixed per streamed request (10-chunk stream − 10 × per chunk) | {fixed:,.0f} |")
    f10 = by["bare actix-web + awc forwarder, stream of 10 chunks"]
    f50 = by["bare actix-web + awc forwarder, stream of 50 chunks"]
    floor_chunk = (f50 - f10) / 40
    lines.append(f"| bare forwarder, per relayed stream chunk | {floor_chunk:,.0f} |")
    lines.append(f"| bare forwarder, fixed per streamed request | {f10 - 10 * floor_chunk:,.0f} |")
    ratio = by["through Pura, non-streaming"] / by["fake upstream alone, non-streaming"]
    lines.append(f"| Pura non-streaming ÷ fake upstream alone | {ratio:.2f}× |")
    floor_json = by["bare actix-web + awc forwarder, non-streaming"]
    lines.append(f"| Pura non-streaming − bare forwarder (Pura's own work) | "
                 f"{by['through Pura, non-streaming'] - floor_json:,.0f} |")
    for tag, label in [("pura_json", "non-streaming"), ("pura_json_paid", "non-streaming, paid key")]:
        w = writer_share(out_dir, tag)
        if w is not None:
            w /= args.requests
            total = by["through Pura, " + label]
            lines.append(f"| through Pura, {label}: the settlement writer's thread | {w:,.0f} |")
            lines.append(f"| through Pura, {label}: the rest (the worker and actors) | {total - w:,.0f} |")
    if args.vector_string_ops:
        lines.append("\nWith glibc's memset/memcpy on their vector loops (`--vector-string-ops`).")
    text = "\n".join(lines)
    name = "instructions-vector.md" if args.vector_string_ops else "instructions.md"
    with open(os.path.join(bench.ROOT, "bench", "out", name), "w") as f:
        f.write(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
