#!/usr/bin/env python3
"""Load check for `tangshi serve`: start a real server on a free loopback port, then run N
concurrent clients that each send R requests for one 七言绝句 (POST /api/poems), twice with the
same requests. Reports, per run, p50 / p95 / max latency, the error count and the server's
resident memory (VmRSS) before and after, so that growth between two identical runs shows.

    python scripts/load_check.py [--clients 20] [--requests 10] [--runs 2] [--json]
"""

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def start_server(extra: list[str]) -> tuple[subprocess.Popen, str, Path]:
    log = Path(tempfile.mkstemp(prefix="tangshi-serve-", suffix=".log")[1])
    proc = subprocess.Popen(
        [sys.executable, "-m", "tangshi", "serve", "--port", "0", *extra],
        stderr=open(log, "w"),
        stdout=subprocess.DEVNULL,
    )
    for _ in range(600):
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", log.read_text())
        if m:
            return proc, f"http://127.0.0.1:{m.group(1)}", log
        if proc.poll() is not None:
            sys.exit(f"tangshi serve exited: {log.read_text().strip()}")
        time.sleep(0.1)
    proc.kill()
    sys.exit("tangshi serve did not start in 60 s")


def one_run(base: str, clients: int, requests: int) -> dict:
    latencies, errors, lock = [], [], threading.Lock()

    def client(c: int):
        with httpx.Client(base_url=base, timeout=120) as http:
            for r in range(requests):
                body = {"form": "qijue", "n": 1, "seed": c * requests + r}
                t0 = time.perf_counter()
                try:
                    res = http.post("/api/poems", json=body)
                    ok = res.status_code == 200 and len(res.json()["poems"]) == 1
                    why = None if ok else f"{res.status_code} {res.text[:100]}"
                except httpx.HTTPError as e:
                    why = f"{type(e).__name__}: {e}"
                dt = time.perf_counter() - t0
                with lock:
                    latencies.append(dt)
                    if why:
                        errors.append(why)

    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    latencies.sort()
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "first_errors": errors[:3],
        "p50_ms": round(q[49] * 1e3, 1),
        "p95_ms": round(q[94] * 1e3, 1),
        "max_ms": round(latencies[-1] * 1e3, 1),
        "wall_s": round(wall, 2),
        "requests_per_s": round(len(latencies) / wall, 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=20)
    ap.add_argument("--requests", type=int, default=10, help="requests per client")
    ap.add_argument("--runs", type=int, default=2, help="identical runs, one after the other")
    ap.add_argument("--queue", type=int, default=32, help="the server's --queue")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    proc, base, log = start_server(["--queue", str(args.queue)])
    try:
        httpx.post(base + "/api/poems", json={"form": "qijue"}, timeout=120)  # first request: caches built
        runs = []
        for _ in range(args.runs):
            before = rss_kb(proc.pid)
            res = one_run(base, args.clients, args.requests)
            runs.append({**res, "rss_before_kb": before, "rss_after_kb": rss_kb(proc.pid)})
        health = httpx.get(base + "/api/health").json()
    finally:
        proc.send_signal(2)
        proc.wait(30)
    out = {
        "clients": args.clients,
        "requests_per_client": args.requests,
        "workers": health["workers"],
        "queue": health["queue"],
        "request": {"form": "qijue", "n": 1},
        "runs": runs,
    }
    if args.json:
        print(json.dumps(out, ensure_ascii=False, indent=1))
    else:
        print(
            f"{args.clients} clients × {args.requests} requests (one 七言绝句 each), server: {health['workers']} "
            f"workers, queue {health['queue']}"
        )
        for i, r in enumerate(runs, 1):
            print(
                f"run {i}: p50 {r['p50_ms']} ms, p95 {r['p95_ms']} ms, max {r['max_ms']} ms, {r['errors']} errors, "
                f"{r['requests_per_s']} requests/s; server RSS {r['rss_before_kb']:,} → {r['rss_after_kb']:,} KB"
            )
    return 1 if any(r["errors"] for r in runs) else 0


if __name__ == "__main__":
    sys.exit(main())
