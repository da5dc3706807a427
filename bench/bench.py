#!/usr/bin/env python3
"""Pura benchmark orchestrator, started by bench/run.sh (which builds and installs first).

Runs the same load (a) straight at a fake upstream, (b) through Pura and (c) through LiteLLM
proxy, measures latency percentiles, throughput, streaming time to first chunk, lost chunks
and the gateway's RSS, and writes a markdown table to bench/results.md (and prints it).

Standard library only. Every load goes to 127.0.0.1 and is bounded in time.
"""

import argparse
import datetime
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPENAI_MODEL = "gpt-4o"
ANTHROPIC_MODEL = "claude-sonnet-4-20250514"
PROMPT = [{"role": "user", "content": "Say hello, briefly."}]
SEED_KEYS = ["OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GEMINI_API_KEY", "GROQ_API_KEY"]
LITELLM_KEY = "sk-bench-master"


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# processes


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(cmd, cpus):
    return (["taskset", "-c", cpus] if cpus else []) + cmd


class Service:
    """A started server: its process, URL and log file."""

    def __init__(self, name, cmd, cpus, logdir, env=None, ready=None, url=None, timeout=120):
        self.name = name
        self.log_path = os.path.join(logdir, f"{name}.log")
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            pinned(cmd, cpus),
            stdout=subprocess.PIPE,
            stderr=self.log_file,
            env=env,
            text=True,
            start_new_session=True,
        )
        self.url = url
        deadline = time.monotonic() + timeout
        if ready is not None:
            # The listening line on stdout carries the URL (port 0 binds).
            for line in self.proc.stdout:
                self.log_file.write(line)
                m = re.search(ready, line)
                if m:
                    self.url = m.group(1)
                    break
                if time.monotonic() > deadline:
                    break
            if self.url is None:
                self.stop()
                raise RuntimeError(f"{name} did not start; see {self.log_path}")
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self):
        for line in self.proc.stdout:
            self.log_file.write(line)

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log_file.flush()


def http(method, url, body=None, headers=None, timeout=10):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    if data is not None:
        req.add_header("content-type", "application/json")
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def wait_http(url, timeout, proc=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and not proc.alive():
            return False
        try:
            status, _ = http("GET", url, timeout=2)
            if status == 200:
                return True
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    return False


# ---------------------------------------------------------------------------------------------
# RSS from /proc


def proc_status(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kib(pid):
    return proc_status(pid, "VmRSS")


def descendants(pid):
    children = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
            children.setdefault(ppid, []).append(int(entry))
        except (OSError, ValueError):
            continue
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def tree_rss_mib(pid, tree):
    pids = descendants(pid) if tree else [pid]
    return sum(rss_kib(p) for p in pids) / 1024.0


class RssSampler:
    """Samples a process's (or its process tree's) RSS and thread count every 50 ms; keeps
    the peaks."""

    def __init__(self, pid, tree=False):
        self.pid, self.tree, self.peak, self.threads = pid, tree, 0.0, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, tree_rss_mib(self.pid, self.tree))
            self.threads = max(self.threads, proc_status(self.pid, "Threads"))
            self._stop.wait(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, tree_rss_mib(self.pid, self.tree))


# ---------------------------------------------------------------------------------------------
# load


class Load:
    def __init__(self, args, cpus, outdir):
        self.args, self.cpus, self.outdir = args, cpus, outdir
        self.upstream = None
        self.threads = str(max(1, len(cpus.split(","))) if cpus else os.cpu_count())

    def oha(self, tag, url, headers, body, rate=None, conns=64, duration=None, warmup=True):
        """One oha run; returns its parsed JSON summary (latencies in seconds)."""
        duration = duration or self.args.duration
        base = [self.args.oha, "--no-tui", "--output-format", "json", "-w",
                "--worker-threads", self.threads, "-c", str(conns), "-m", "POST",
                "-d", json.dumps(body)]
        for k, v in headers.items():
            base += ["-H", f"{k}: {v}"]
        if rate:
            base += ["-q", str(rate), "--latency-correction"]
        if warmup and self.args.warmup > 0:
            subprocess.run(pinned(base + ["-z", f"{self.args.warmup}s", url], self.cpus),
                           capture_output=True, timeout=self.args.warmup + 120)
        cmd = pinned(base + ["-z", f"{duration}s", url], self.cpus)
        log(f"{tag}: oha {'-q ' + str(rate) if rate else 'closed loop'} -c {conns} -z {duration}s {url}")
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 180)
        with open(os.path.join(self.outdir, f"{tag}.oha.json"), "w") as f:
            f.write(r.stdout)
        if r.returncode != 0:
            raise RuntimeError(f"oha failed ({r.returncode}): {r.stderr[-2000:]}")
        return json.loads(r.stdout)

    def streams(self, tag, url, fmt, key, model, streams, ramp, chunks, timeout=120):
        """One bench_streams run; adds `upstream_peak`, the most responses the fake upstream
        had in progress at once during it."""
        http("POST", self.upstream + "/bench/reset")
        cmd = pinned([self.args.streams_bin, "--url", url, "--format", fmt, "--key", key,
                      "--model", model, "--streams", str(streams), "--ramp-s", str(ramp),
                      "--expect-chunks", str(chunks), "--timeout-s", str(timeout)], self.cpus)
        log(f"{tag}: {streams} streams of {chunks} chunks over a {ramp}s ramp -> {url}")
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout + 120)
        with open(os.path.join(self.outdir, f"{tag}.streams.json"), "w") as f:
            f.write(r.stdout)
        if r.returncode != 0:
            raise RuntimeError(f"bench_streams failed ({r.returncode}): {r.stderr[-2000:]}")
        res = json.loads(r.stdout)
        res["upstream_peak"] = json.loads(http("GET", self.upstream + "/bench/stats")[1])["peak"]
        return res


def oha_row(res, offered):
    s = res["summary"]
    codes = {int(k): v for k, v in res.get("statusCodeDistribution", {}).items()}
    ok = codes.get(200, 0)
    transport = sum(res.get("errorDistribution", {}).values())
    errors = sum(v for k, v in codes.items() if k != 200) + transport
    pct = res["latencyPercentiles"]
    ms = lambda k: None if pct.get(k) is None else pct[k] * 1000.0  # noqa: E731
    return {
        "offered": offered,
        "achieved": ok / s["total"] if s["total"] else 0.0,
        "requests": ok + errors,
        "p50": ms("p50"), "p90": ms("p90"), "p99": ms("p99"),
        "errors": errors,
        "error_kinds": dict(list(res.get("errorDistribution", {}).items())[:3]),
        "codes": {k: v for k, v in codes.items() if k != 200},
    }


# ---------------------------------------------------------------------------------------------
# the gateways


def pura_config(tmp, upstream_url, workers):
    db = os.path.join(tmp, "pura.db")
    base = upstream_url + "/v1"
    text = f"""# written by bench/bench.py: everything on (auth, usage rows on SQLite), limits out of the way
[server]
bind = "127.0.0.1:0"
workers = {workers}
open_key_minting = true
key_mint_per_ip_per_hour = 1000000

[database]
url = "sqlite://{db}"

[providers.openai]
enabled = false
[providers.anthropic]
enabled = false
[providers.gemini]
enabled = false
[providers.groq]
enabled = false

[providers.fake_openai]
dialect = "openai"
base_url = "{base}"
api_key = "bench"
tier = "mid"
models = ["{OPENAI_MODEL}"]
price_per_1k = 0.0001
timeout = "60s"                 # the default

[providers.fake_anthropic]
dialect = "anthropic"
base_url = "{base}"
api_key = "bench"
tier = "premium"
models = ["{ANTHROPIC_MODEL}"]
price_per_1k = 0.0001
timeout = "60s"                 # the default

[free_tier]
requests = 1000000000000
max_request_usd = 1000000.0
daily_budget_usd = 1000000000000.0

[limits]
rpm = 1000000000
default_daily_budget_usd = 1000000000.0
default_monthly_budget_usd = 1000000000.0
"""
    path = os.path.join(tmp, "pura.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def mint(pura_url, label):
    status, body = http("POST", pura_url + "/api/keys", {"label": label})
    if status != 201:
        raise RuntimeError(f"POST /api/keys answered {status}")
    return json.loads(body)["key"]


def litellm_config(tmp, upstream_url):
    base = upstream_url + "/v1"
    text = f"""# written by bench/bench.py
model_list:
  - model_name: {OPENAI_MODEL}
    litellm_params:
      model: openai/{OPENAI_MODEL}
      api_base: {base}
      api_key: bench
general_settings:
  master_key: {LITELLM_KEY}
litellm_settings:
  set_verbose: false
  drop_params: true
"""
    path = os.path.join(tmp, "litellm.yaml")
    with open(path, "w") as f:
        f.write(text)
    return path


# ---------------------------------------------------------------------------------------------
# the table


def f2(v, digits=2):
    return "–" if v is None else f"{v:.{digits}f}"


def diff(a, b):
    return None if a is None or b is None else a - b


def verdict(ok):
    return "**PASS**" if ok else "**FAIL**"


def render(meta, rows, streams, rss, targets, notes):
    out = []
    out.append("# Pura benchmark results\n")
    out.append(f"Run {meta['date']} · commit `{meta['commit']}` · {meta['cpu']} · "
               f"{meta['cores']} cores, {meta['mem']} · {meta['pinning']} · "
               f"oha {meta['oha']} · LiteLLM {meta['litellm']} · "
               f"fake upstream: 0 ms latency, {meta['chunks']} chunks, "
               f"{meta['chunk_delay']} ms between stream chunks · "
               f"{meta['duration']} s per run after a {meta['warmup']} s warm-up · "
               f"command: `bench/run.sh`\n")
    out.append("Added latency = the gateway's percentile minus the same percentile of the direct "
               "run at the same load (a difference of percentiles of two runs, not a per-request "
               "difference). Latencies in ms; fixed-rate runs use oha `-q RATE "
               "--latency-correction` (open loop, latency counted from each request's scheduled "
               "time); RSS is the gateway's peak resident set during the run, from "
               "/proc/PID/status (LiteLLM: its process tree).\n")
    out.append("## Non-streaming\n")
    out.append("| Scenario | Target | RPS offered | RPS achieved | p50 | p90 | p99 | added p50 | "
               "added p90 | added p99 | errors | gateway RSS MB |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        out.append(
            f"| {r['scenario']} | {r['target']} | {r['offered']} | {f2(r.get('achieved'), 0)} | "
            f"{f2(r.get('p50'), 3)} | {f2(r.get('p90'), 3)} | {f2(r.get('p99'), 3)} | "
            f"{f2(r.get('add50'), 3)} | {f2(r.get('add90'), 3)} | {f2(r.get('add99'), 3)} | "
            f"{r.get('errors', '–')} | {f2(r.get('rss'), 1)} |")
    out.append("")
    out.append("## Streaming\n")
    out.append("| Scenario | Target | streams | peak open at client | peak open at upstream | "
               "failed | TTFC p50 | TTFC p99 | added TTFC p50 | added TTFC p99 | stream p50 | "
               "chunks expected | received | lost | gateway RSS MB |")
    out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in streams:
        out.append(
            f"| {s['scenario']} | {s['target']} | {s.get('streams', '–')} | "
            f"{s.get('peak', '–')} | {s.get('up_peak', '–')} | "
            f"{s.get('failed', '–')} | {f2(s.get('t50'), 3)} | "
            f"{f2(s.get('t99'), 3)} | {f2(s.get('add50'), 3)} | {f2(s.get('add99'), 3)} | "
            f"{f2(s.get('d50'), 0)} | {s.get('expected', '–')} | {s.get('received', '–')} | "
            f"{s.get('lost', '–')} | {f2(s.get('rss'), 1)} |")
    out.append("")
    out.append("## Memory\n")
    out.append("| Gateway | RSS idle (started, key minted) MB | RSS peak MB (when) | "
               "RSS idle after the load MB | threads idle → peak |")
    out.append("|---|---:|---:|---:|---:|")
    for r in rss:
        out.append(f"| {r['gateway']} | {f2(r.get('idle'), 1)} | {f2(r.get('peak'), 1)} "
                   f"({r.get('peak_when', '–')}) | {f2(r.get('after'), 1)} | "
                   f"{r.get('threads_idle', '–')} → {r.get('threads', '–')} |")
    out.append("")
    out.append("## Targets\n")
    out.append("| Target | Measured | Verdict |")
    out.append("|---|---|---|")
    for t in targets:
        out.append(f"| {t[0]} | {t[1]} | {t[2]} |")
    out.append("")
    if notes:
        out.append("## Notes\n")
        for n in notes:
            out.append(f"- {n}")
        out.append("")
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------


def cpu_split(pin):
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return None, None, "no CPU pinning"
    half = len(cpus) // 2
    load, gw = cpus[:half], cpus[half:]
    j = lambda c: ",".join(map(str, c))  # noqa: E731
    return j(load), j(gw), (f"pinned with taskset: load generator + fake upstream on CPU {j(load)}, "
                            f"gateway (Pura or LiteLLM) on CPU {j(gw)}")


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) / 1024 / 1024
    except OSError:
        mem = 0
    return cpu, f"{mem:.0f} GiB"


def git_commit():
    try:
        c = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                           capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "src",
                                "examples", "Cargo.toml", "Cargo.lock"],
                               capture_output=True, text=True).stdout.strip()
        return c + ("+dirty" if dirty else "")
    except OSError:
        return "unknown"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--target-dir", required=True)
    ap.add_argument("--oha", default="oha")
    ap.add_argument("--litellm", default=os.path.join(ROOT, "bench", ".venv", "bin", "litellm"))
    ap.add_argument("--duration", type=int, default=int(os.environ.get("BENCH_DURATION", 10)))
    ap.add_argument("--warmup", type=int, default=int(os.environ.get("BENCH_WARMUP", 1)))
    ap.add_argument("--rates", default=os.environ.get("BENCH_RATES", "500,1000,2000"))
    ap.add_argument("--litellm-rates", default=os.environ.get("BENCH_LITELLM_RATES", "25,50,500"))
    ap.add_argument("--streams", type=int, default=int(os.environ.get("BENCH_STREAMS", 1000)))
    ap.add_argument("--litellm-streams", type=int,
                    default=int(os.environ.get("BENCH_LITELLM_STREAMS", 100)))
    ap.add_argument("--chunks", type=int, default=int(os.environ.get("BENCH_CHUNKS", 50)))
    ap.add_argument("--chunk-delay-ms", type=float,
                    default=float(os.environ.get("BENCH_CHUNK_DELAY_MS", 100)))
    ap.add_argument("--ramp-s", type=float, default=float(os.environ.get("BENCH_RAMP_S", 2)))
    ap.add_argument("--no-stream-warmup", action="store_true",
                    default=os.environ.get("BENCH_STREAM_WARMUP") == "0")
    ap.add_argument("--no-pin", action="store_true", default=os.environ.get("BENCH_PIN") == "0")
    ap.add_argument("--skip-litellm", action="store_true",
                    default=os.environ.get("BENCH_SKIP_LITELLM") == "1")
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results.md"))
    args = ap.parse_args()

    started = time.monotonic()
    rel = os.path.join(args.target_dir, "release")
    pura_bin = os.path.join(rel, "pura")
    upstream_bin = os.path.join(rel, "examples", "bench_upstream")
    floor_bin = os.path.join(rel, "examples", "bench_floor")
    args.streams_bin = os.path.join(rel, "examples", "bench_streams")
    load_cpus, gw_cpus, pinning = cpu_split(not args.no_pin)
    gw_workers = len(gw_cpus.split(",")) if gw_cpus else os.cpu_count()
    tmp = tempfile.mkdtemp(prefix="pura-bench-")
    outdir = os.path.join(ROOT, "bench", "out")
    shutil.rmtree(outdir, ignore_errors=True)
    os.makedirs(outdir)
    load = Load(args, load_cpus, outdir)
    rows, streams, rss, notes = [], [], [], []
    services = []

    def stop_all():
        for s in services:
            s.stop()

    try:
        up = Service("upstream", [upstream_bin, "--workers", str(len(load_cpus.split(",")) if load_cpus else 1),
                                  "--chunks", str(args.chunks),
                                  "--chunk-delay-ms", str(args.chunk_delay_ms)],
                     load_cpus, outdir, ready=r"listening on (http://\S+)")
        services.append(up)
        load.upstream = up.url
        openai_direct = up.url + "/v1/chat/completions"
        anthropic_direct = up.url + "/v1/messages"
        oa_body = {"model": OPENAI_MODEL, "messages": PROMPT}
        an_body = {"model": ANTHROPIC_MODEL, "max_tokens": 256, "messages": PROMPT}
        direct_h = {"content-type": "application/json", "authorization": "Bearer bench"}
        an_h = {"content-type": "application/json", "x-api-key": "bench",
                "anthropic-version": "2023-06-01"}

        # ---- Pura
        env = {k: v for k, v in os.environ.items() if k not in SEED_KEYS and not k.startswith("PURA")}
        env["RUST_LOG"] = os.environ.get("BENCH_PURA_LOG", "info")
        cfg = pura_config(tmp, up.url, gw_workers)
        pura = Service("pura", [pura_bin, "--config", cfg], gw_cpus, outdir, env=env,
                       ready=r"pura listening on (http://\S+)")
        services.append(pura)
        time.sleep(1.0)
        mint(pura.url, "bench-idle")
        time.sleep(1.0)
        pura_rss = {"gateway": f"Pura ({gw_workers} worker{'s' if gw_workers > 1 else ''})",
                    "idle": tree_rss_mib(pura.pid, False), "peak": 0.0,
                    "threads_idle": proc_status(pura.pid, "Threads")}
        pura_url = pura.url + "/v1/chat/completions"

        def pura_h_at(url, label):
            return {"content-type": "application/json",
                    "authorization": f"Bearer {mint(url, label)}"}

        def pura_h(label):
            return pura_h_at(pura.url, label)

        def track_peak(entry, sampler, when):
            if sampler.peak > entry["peak"]:
                entry["peak"], entry["peak_when"] = sampler.peak, when
            entry["threads"] = max(entry.get("threads", 0), sampler.threads)

        # Non-streaming at fixed rates: direct, then Pura, side by side.
        for rate in [int(r) for r in args.rates.split(",") if r]:
            sc = f"non-streaming {rate} RPS"
            d = oha_row(load.oha(f"direct-{rate}", openai_direct, direct_h, oa_body, rate), rate)
            rows.append({**d, "scenario": sc, "target": "direct (fake upstream)"})
            with RssSampler(pura.pid) as s:
                p = oha_row(load.oha(f"pura-{rate}", pura_url, pura_h(f"rate-{rate}"),
                                     oa_body, rate), rate)
            track_peak(pura_rss, s, sc)
            rows.append({**p, "scenario": sc, "target": "Pura", "rss": s.peak,
                         "add50": diff(p["p50"], d["p50"]), "add90": diff(p["p90"], d["p90"]),
                         "add99": diff(p["p99"], d["p99"])})

        # Anthropic dialect, one rate.
        rate = 1000
        sc = f"non-streaming {rate} RPS, Anthropic dialect"
        d = oha_row(load.oha("direct-anthropic", anthropic_direct, an_h, an_body, rate), rate)
        rows.append({**d, "scenario": sc, "target": "direct (fake upstream)"})
        with RssSampler(pura.pid) as s:
            p = oha_row(load.oha("pura-anthropic", pura_url, pura_h("anthropic"),
                                 {"model": ANTHROPIC_MODEL, "messages": PROMPT}, rate), rate)
        track_peak(pura_rss, s, sc)
        rows.append({**p, "scenario": sc, "target": "Pura (OpenAI in, Anthropic out)",
                     "rss": s.peak, "add50": diff(p["p50"], d["p50"]),
                     "add90": diff(p["p90"], d["p90"]), "add99": diff(p["p99"], d["p99"])})

        # Maximum throughput, closed loop with 64 connections.
        sc = sc_max = "max throughput (closed loop, 64 conns)"
        dmax = oha_row(load.oha("direct-max", openai_direct, direct_h, oa_body), "max")
        rows.append({**dmax, "scenario": sc, "target": "direct (fake upstream)"})
        with RssSampler(pura.pid) as s:
            pmax = oha_row(load.oha("pura-max", pura_url, pura_h("max"), oa_body), "max")
        track_peak(pura_rss, s, sc)
        rows.append({**pmax, "scenario": sc, "target": "Pura", "rss": s.peak,
                     "add50": diff(pmax["p50"], dmax["p50"]),
                     "add90": diff(pmax["p90"], dmax["p90"]),
                     "add99": diff(pmax["p99"], dmax["p99"])})
        # The same through a bare actix-web + awc forwarder on Pura's CPU and worker count: how
        # close to direct the stack itself lets any gateway come on this machine.
        floor = Service("floor", [floor_bin, "--upstream", up.url, "--workers", str(gw_workers)],
                        gw_cpus, outdir, ready=r"listening on (http://\S+)")
        services.append(floor)
        fmax = oha_row(load.oha("floor-max", floor.url + "/v1/chat/completions", direct_h,
                                oa_body), "max")
        floor.stop()
        rows.append({**fmax, "scenario": sc, "target": "bare forwarder (examples/bench_floor)",
                     "add50": diff(fmax["p50"], dmax["p50"]),
                     "add90": diff(fmax["p90"], dmax["p90"]),
                     "add99": diff(fmax["p99"], dmax["p99"])})

        # Streaming: 1,000 concurrent streams of 50 chunks, direct then Pura, both dialects.
        stream_res = {}
        for dialect, direct_url, fmt, model in [
            ("OpenAI", openai_direct, "openai", OPENAI_MODEL),
            ("Anthropic", anthropic_direct, "anthropic", ANTHROPIC_MODEL),
        ]:
            sc = f"{args.streams} streams × {args.chunks} chunks, {dialect} upstream"
            key = mint(pura.url, f"streams-{fmt}")
            # Each measured run follows an unrecorded one of the same size at the same target,
            # as oha's warm-up precedes each non-streaming run: the first 1,000 streams a fresh
            # process serves are the slow ones whichever dialect they speak (twelfth session),
            # so without it the row measured the order of the runs, not the dialect.
            if not args.no_stream_warmup:
                load.streams(f"warmup-direct-streams-{fmt}", direct_url, fmt, "bench", model,
                             args.streams, args.ramp_s, args.chunks)
            dres = load.streams(f"direct-streams-{fmt}", direct_url, fmt, "bench", model,
                                args.streams, args.ramp_s, args.chunks)
            if not args.no_stream_warmup:
                load.streams(f"warmup-pura-streams-{fmt}", pura_url, "openai", key, model,
                             args.streams, args.ramp_s, args.chunks)
            with RssSampler(pura.pid) as s:
                pres = load.streams(f"pura-streams-{fmt}", pura_url, "openai", key, model,
                                    args.streams, args.ramp_s, args.chunks)
            track_peak(pura_rss, s, sc)
            stream_res[fmt] = (dres, pres, s.peak)
            for target, res, peak in [("direct (fake upstream)", dres, None),
                                      ("Pura", pres, s.peak)]:
                row = {"scenario": sc, "target": target, "streams": res["streams"],
                       "peak": res["peak_concurrent"], "up_peak": res["upstream_peak"],
                       "failed": res["failed"],
                       "t50": res["ttfc_ms"]["p50"], "t99": res["ttfc_ms"]["p99"],
                       "d50": res["duration_ms"]["p50"], "expected": res["chunks_expected"],
                       "received": res["chunks_received"], "lost": res["chunks_lost"],
                       "rss": peak}
                if res is pres:
                    row["add50"] = diff(pres["ttfc_ms"]["p50"], dres["ttfc_ms"]["p50"])
                    row["add99"] = diff(pres["ttfc_ms"]["p99"], dres["ttfc_ms"]["p99"])
                if res["errors"]:
                    notes.append(f"{sc}, {target}: errors seen: {res['errors']}")
                streams.append(row)

        time.sleep(2.0)
        pura_rss["after"] = tree_rss_mib(pura.pid, False)
        rss.append(pura_rss)
        if not pura.alive():
            notes.append("Pura exited during the run; see bench/out/pura.log")
        pura.stop()

        # 1 worker against one per CPU: the same closed loop through a second Pura with a
        # worker on every CPU, unpinned (on a machine this small it shares the load
        # generator's and the fake upstream's CPUs).
        all_cpus = ",".join(map(str, sorted(os.sched_getaffinity(0))))
        wide = None
        if gw_cpus and all_cpus != gw_cpus:
            n_all = len(all_cpus.split(","))
            cfg_wide = pura_config(tempfile.mkdtemp(prefix="pura-bench-wide-"), up.url, n_all)
            pura_wide = Service("pura-wide", [pura_bin, "--config", cfg_wide], None, outdir,
                                env=env, ready=r"pura listening on (http://\S+)")
            services.append(pura_wide)
            time.sleep(1.0)
            wide = oha_row(load.oha("pura-wide-max", pura_wide.url + "/v1/chat/completions",
                                    pura_h_at(pura_wide.url, "wide"), oa_body), "max")
            pura_wide.stop()
            rows.append({**wide, "scenario": sc_max,
                         "target": f"Pura, {n_all} workers on CPUs {all_cpus} (unpinned)",
                         "add50": diff(wide["p50"], dmax["p50"]),
                         "add90": diff(wide["p90"], dmax["p90"]),
                         "add99": diff(wide["p99"], dmax["p99"])})

        # ---- LiteLLM
        lmax = None
        if args.skip_litellm:
            notes.append("LiteLLM runs skipped (BENCH_SKIP_LITELLM=1).")
        else:
            port = free_port()
            lenv = dict(os.environ)
            lenv.update({"LITELLM_LOCAL_MODEL_COST_MAP": "True", "LITELLM_LOG": "ERROR",
                         "LITELLM_TELEMETRY": "False", "NO_DOCS": "True"})
            lcfg = litellm_config(tmp, up.url)
            lite = Service("litellm", [args.litellm, "--config", lcfg, "--host", "127.0.0.1",
                                       "--port", str(port), "--num_workers", "1"],
                           gw_cpus, outdir, env=lenv, url=f"http://127.0.0.1:{port}")
            services.append(lite)
            if not wait_http(lite.url + "/health/liveliness", 180, lite):
                raise RuntimeError("LiteLLM did not become ready; see bench/out/litellm.log")
            lh = {"content-type": "application/json", "authorization": f"Bearer {LITELLM_KEY}"}
            # One request first (LiteLLM builds its router lazily), then the idle RSS.
            http("POST", lite.url + "/v1/chat/completions", oa_body,
                 {"authorization": f"Bearer {LITELLM_KEY}"}, timeout=60)
            time.sleep(1.0)
            lrss = {"gateway": "LiteLLM proxy (1 worker, no database)",
                    "idle": tree_rss_mib(lite.pid, True), "peak": 0.0,
                    "threads_idle": proc_status(lite.pid, "Threads")}
            lurl = lite.url + "/v1/chat/completions"
            sc = "max throughput (closed loop, 64 conns)"
            with RssSampler(lite.pid, tree=True) as s:
                lmax = oha_row(load.oha("litellm-max", lurl, lh, oa_body), "max")
            track_peak(lrss, s, sc)
            rows.append({**lmax, "scenario": sc, "target": "LiteLLM", "rss": s.peak,
                         "add50": diff(lmax["p50"], dmax["p50"]),
                         "add90": diff(lmax["p90"], dmax["p90"]),
                         "add99": diff(lmax["p99"], dmax["p99"])})
            direct_by_rate = {r["offered"]: r for r in rows if r["target"].startswith("direct")
                              and isinstance(r["offered"], int) and "Anthropic" not in r["scenario"]}
            for rate in [int(r) for r in args.litellm_rates.split(",") if r]:
                sc = f"non-streaming {rate} RPS"
                d = direct_by_rate.get(rate)
                if d is None:
                    d = oha_row(load.oha(f"direct-{rate}", openai_direct, direct_h, oa_body,
                                         rate), rate)
                    rows.append({**d, "scenario": sc, "target": "direct (fake upstream)"})
                with RssSampler(lite.pid, tree=True) as s:
                    lr = oha_row(load.oha(f"litellm-{rate}", lurl, lh, oa_body, rate), rate)
                track_peak(lrss, s, sc)
                row = {**lr, "scenario": sc, "target": "LiteLLM", "rss": s.peak,
                       "add50": diff(lr["p50"], d["p50"]), "add90": diff(lr["p90"], d["p90"]),
                       "add99": diff(lr["p99"], d["p99"])}
                if lr["achieved"] < 0.95 * rate or lr["errors"]:
                    row["target"] = "LiteLLM (**saturated**)"
                rows.append(row)
            if args.litellm_streams > 0:
                sc = f"{args.litellm_streams} streams × {args.chunks} chunks, OpenAI upstream"
                dres = load.streams("direct-streams-litellm", openai_direct, "openai", "bench",
                                    OPENAI_MODEL, args.litellm_streams, args.ramp_s, args.chunks)
                with RssSampler(lite.pid, tree=True) as s:
                    lres = load.streams("litellm-streams", lurl, "openai", LITELLM_KEY,
                                        OPENAI_MODEL, args.litellm_streams, args.ramp_s,
                                        args.chunks)
                track_peak(lrss, s, sc)
                for target, res, peak in [("direct (fake upstream)", dres, None),
                                          ("LiteLLM", lres, s.peak)]:
                    row = {"scenario": sc, "target": target, "streams": res["streams"],
                           "peak": res["peak_concurrent"], "up_peak": res["upstream_peak"],
                           "failed": res["failed"],
                           "t50": res["ttfc_ms"]["p50"], "t99": res["ttfc_ms"]["p99"],
                           "d50": res["duration_ms"]["p50"], "expected": res["chunks_expected"],
                           "received": res["chunks_received"], "lost": res["chunks_lost"],
                           "rss": peak}
                    if res is lres:
                        row["add50"] = diff(lres["ttfc_ms"]["p50"], dres["ttfc_ms"]["p50"])
                        row["add99"] = diff(lres["ttfc_ms"]["p99"], dres["ttfc_ms"]["p99"])
                    if res["errors"]:
                        notes.append(f"{sc}, {target}: errors seen: {res['errors']}")
                    streams.append(row)
            time.sleep(2.0)
            lrss["after"] = tree_rss_mib(lite.pid, True)
            rss.append(lrss)
            lite.stop()
    finally:
        stop_all()

    # ---- targets
    targets = []
    at = [r for r in rows if r["target"] == "Pura" and r["offered"] == 2000]
    if at:
        r = at[0]
        targets.append(("added latency at 2,000 RPS non-streaming: p50 ≤ 0.2 ms, p99 ≤ 0.5 ms",
                        f"p50 {f2(r['add50'], 3)} ms, p99 {f2(r['add99'], 3)} ms"
                        + ("" if r["errors"] == 0 else f", {r['errors']} errors")
                        + ("" if r["achieved"] >= 0.98 * 2000
                           else f", achieved only {r['achieved']:.0f} RPS"),
                        verdict(r["add50"] is not None and r["add50"] <= 0.2
                                and r["add99"] <= 0.5 and r["errors"] == 0
                                and r["achieved"] >= 0.98 * 2000)))
    ratio = pmax["achieved"] / dmax["achieved"] if dmax["achieved"] else 0
    floor_ratio = fmax["achieved"] / dmax["achieved"] if dmax["achieved"] else 0
    targets.append(("throughput through Pura ≥ 0.5 × the fake upstream's direct throughput",
                    f"{pmax['achieved']:.0f} vs {dmax['achieved']:.0f} RPS = {ratio:.2f}× "
                    f"(bare forwarder: {fmax['achieved']:.0f} RPS = {floor_ratio:.2f}×)",
                    verdict(ratio >= 0.5 and pmax["errors"] == 0)))
    if wide is not None:
        scale = wide["achieved"] / pmax["achieved"] if pmax["achieved"] else 0
        targets.append(("with a worker per core the throughput scales (1 vs "
                        f"{len(all_cpus.split(','))} workers, closed loop)",
                        f"1 worker on CPU {gw_cpus}: {pmax['achieved']:.0f} RPS; "
                        f"{len(all_cpus.split(','))} workers on CPUs {all_cpus}: "
                        f"{wide['achieved']:.0f} RPS = {scale:.2f}× (the load generator and "
                        "the fake upstream share those CPUs)",
                        # No verdict: the extra workers run on the load's CPUs, so this
                        # cannot show scaling either way; it is reported.
                        "reported, no verdict"))
    if lmax is not None:
        lr = pmax["achieved"] / lmax["achieved"] if lmax["achieved"] else float("inf")
        targets.append(("throughput through Pura ≥ 100 × LiteLLM's",
                        f"{pmax['achieved']:.0f} vs {lmax['achieved']:.1f} RPS = {lr:.0f}×",
                        verdict(lr >= 100)))
    for fmt, (dres, pres, peak) in stream_res.items():
        a99 = diff(pres["ttfc_ms"]["p99"], dres["ttfc_ms"]["p99"])
        targets.append((f"added TTFC p99 ≤ 1 ms with {args.streams} concurrent streams, "
                        f"0 chunks lost ({'OpenAI' if fmt == 'openai' else 'Anthropic'} upstream)",
                        f"added p99 {f2(a99, 3)} ms, {pres['chunks_lost']} lost, "
                        f"{pres['failed']} failed, peak open {pres['peak_concurrent']} at the "
                        f"client, {pres['upstream_peak']} at the upstream",
                        verdict(a99 is not None and a99 <= 1.0 and pres["chunks_lost"] == 0
                                and pres["failed"] == 0)))
    targets.append(("Pura RSS ≤ 30 MB idle", f"{pura_rss['idle']:.1f} MB",
                    verdict(pura_rss["idle"] <= 30)))
    peak_streams = max((p for _, _, p in stream_res.values()), default=0.0)
    reached = min((r["upstream_peak"] for _, r, _ in stream_res.values()), default=0)
    if reached >= args.streams:
        targets.append((f"Pura RSS ≤ 150 MB at {args.streams} concurrent streams",
                        f"{peak_streams:.1f} MB", verdict(peak_streams <= 150)))
    else:
        targets.append((f"Pura RSS ≤ 150 MB at {args.streams} concurrent streams",
                        f"{peak_streams:.1f} MB, but at most {reached} streams were open "
                        "through Pura at once", "**not reached**"))

    notes.append("Pura runs with its defaults except what the benchmark needs: its own SQLite file "
                 "in a temp dir (usage row per request, group commit), a key minted through "
                 "`POST /api/keys` for each run (so a run does not inherit the usage rows of the "
                 "ones before it), limits, free tier and budgets raised out of the way, "
                 f"`RUST_LOG={env['RUST_LOG']}` (its access log on).")
    notes.append("LiteLLM runs with a master key and no database (no spend tracking), one uvicorn "
                 "worker; it saturates far below Pura's rates, so its fixed-rate rows are at rates "
                 "it can take, plus the lowest of Pura's rates to show the overload.")
    notes.append("Streaming: each stream is opened at an even pace over the ramp and lasts "
                 f"{args.chunks} × {args.chunk_delay_ms:g} ms, so all are open at once at the "
                 "end of the ramp; TTFC is from sending the request to the first SSE event; "
                 "chunks are content deltas (OpenAI `delta.content`, Anthropic "
                 "`content_block_delta`), and a stream must end with its terminator.")
    elapsed = time.monotonic() - started
    cpu, mem = machine()
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": git_commit(), "cpu": cpu, "cores": os.cpu_count(), "mem": mem,
        "pinning": pinning, "duration": args.duration, "warmup": args.warmup,
        "chunks": args.chunks, "chunk_delay": f"{args.chunk_delay_ms:g}",
        "oha": subprocess.run([args.oha, "--version"], capture_output=True,
                              text=True).stdout.strip().replace("oha ", ""),
        "litellm": os.environ.get("BENCH_LITELLM_VERSION", "?") if not args.skip_litellm else "skipped",
    }
    notes.append("Each streaming run followed an unrecorded run of the same size at the same target "
                 "(a stream warm-up)." if not args.no_stream_warmup else
                 "Streaming runs had no warm-up (BENCH_STREAM_WARMUP=0).")
    notes.append(f"Measuring took {elapsed / 60:.1f} min (builds and installs not counted).")
    text = render(meta, rows, streams, rss, targets, notes)
    with open(args.out, "w") as f:
        f.write(text + "\n")
    print(text)
    shutil.rmtree(tmp, ignore_errors=True)
    log(f"wrote {os.path.relpath(args.out, ROOT)}; raw outputs and logs in bench/out/")


if __name__ == "__main__":
    main()
