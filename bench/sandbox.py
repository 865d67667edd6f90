"""Benchmark: send 1,000,000 people to the TikTok sandbox in 10,000-person mapping batches.

    .venv/bin/python bench/sandbox.py [--people 1000000] [--batch 10000] [--url URL --key K]

Without --url it starts its own sandbox (temp data dir, control on) and stops it after.
Each person carries four hashed ids (email, phone, IDFA, AAID): the heaviest request the
product sends. All request bodies are built (hashed and JSON-encoded) before the clock
starts, so the timed figure is the sandbox's throughput, not this script's hashing; the
build time is printed separately. Target: < 20 s.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.fixtures.sandbox import ADVERTISERS, SandboxServer  # noqa: E402

SCHEMA = ["EMAIL_SHA256", "PHONE_SHA256", "IDFA_SHA256", "AAID_SHA256"]


def build_body(audience_id: str, start: int, count: int) -> bytes:
    sha = hashlib.sha256
    target = [audience_id]
    batch = [
        [
            {"id": sha(b"user%d@example.com" % n).hexdigest(), "audience_ids": target},
            {"id": sha(b"+1555%07d" % n).hexdigest(), "audience_ids": target},
            {"id": sha(b"idfa-%d" % n).hexdigest(), "audience_ids": target},
            {"id": sha(b"aaid-%d" % n).hexdigest(), "audience_ids": target},
        ]
        for n in range(start, start + count)
    ]
    body = {
        "advertiser_ids": [ADVERTISERS[0][0]],
        "action": "add",
        "id_schema": SCHEMA,
        "batch_data": batch,
    }
    return json.dumps(body).encode()


def run(api_base: str, token: str, people: int, batch: int) -> dict[str, Any]:
    http = requests.Session()
    http.headers.update({"Access-Token": token, "Content-Type": "application/json"})
    created = http.post(
        api_base + "segment/audience/",
        json={
            "advertiser_id": ADVERTISERS[0][0],
            "action": "create",
            "custom_audience_name": f"bench {people} people",
            "id_type": "EMAIL_SHA256",
        },
        timeout=30,
    ).json()
    assert created["code"] == 0, created
    audience_id = created["data"]["audience_id"]

    built_at = time.perf_counter()
    bodies = [
        build_body(audience_id, start, min(batch, people - start))
        for start in range(0, people, batch)
    ]
    build_s = time.perf_counter() - built_at

    began = time.perf_counter()
    slowest = 0.0
    for n, body in enumerate(bodies):
        sent_at = time.perf_counter()
        answer = http.post(api_base + "segment/mapping/", data=body, timeout=120).json()
        slowest = max(slowest, time.perf_counter() - sent_at)
        if answer["code"] != 0:
            raise SystemExit(f"batch {n} failed: {answer}")
    total = time.perf_counter() - began
    megabytes = sum(len(b) for b in bodies) / 1e6

    got_at = time.perf_counter()
    details = http.get(
        api_base + "dmp/custom_audience/get/",
        params={
            "advertiser_id": ADVERTISERS[0][0],
            "custom_audience_ids": json.dumps([audience_id]),
        },
        timeout=120,
    ).json()
    get_s = time.perf_counter() - got_at
    cover = details["data"]["list"][0]["audience_details"]["cover_num"]
    return {
        "requests": len(bodies),
        "total_s": total,
        "build_s": build_s,
        "megabytes": megabytes,
        "slowest_request_s": slowest,
        "cover_num": cover,
        "get_s": get_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--url", help="a running sandbox, e.g. http://127.0.0.1:9100")
    parser.add_argument("--key", help="its control key (to issue a token)")
    args = parser.parse_args()

    print(
        f"machine: {platform.machine()} {platform.system()} {platform.release()}, "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory(prefix="sandbox-bench-") as workdir:
        server = SandboxServer(Path(workdir))
        if args.url:
            server.port = int(args.url.rsplit(":", 1)[1].strip("/"))
            server.key = args.key or ""
            server.http.headers["X-Sandbox-Control"] = server.key
        else:
            server.start()
        try:
            token = server.issue_token([ADVERTISERS[0][0]])
            figures = run(server.api_base_url, token, args.people, args.batch)
            if server.process is not None:
                status = Path(f"/proc/{server.process.pid}/status")
                rss = [line for line in status.read_text().splitlines() if line.startswith("VmRSS")]
                figures["rss"] = rss[0].split(":", 1)[1].strip() if rss else "?"
                restarted_at = time.perf_counter()
                server.restart()
                figures["restart_s"] = time.perf_counter() - restarted_at
        finally:
            if not args.url:
                server.stop()
    people_per_s = args.people / figures["total_s"]
    print(
        f"sent {args.people:,} people (4 ids each) in {figures['requests']} mapping requests "
        f"of {args.batch:,}: {figures['total_s']:.1f} s ({people_per_s:,.0f} people/s)"
    )
    print(
        f"  {figures['megabytes']:,.0f} MB of JSON; slowest request "
        f"{figures['slowest_request_s']:.2f} s; building the bodies first took "
        f"{figures['build_s']:.1f} s (not timed)"
    )
    print(f"  get/ afterwards: cover_num {figures['cover_num']:,} in {figures['get_s']:.2f} s")
    if "rss" in figures:
        print(
            f"  sandbox memory after: {figures['rss']}; restart (reloading every id from "
            f"SQLite) took {figures['restart_s']:.1f} s"
        )
    verdict = "PASS" if figures["total_s"] < 20 else "SLOWER THAN THE 20 s TARGET"
    print(f"  target < 20 s: {verdict}")


if __name__ == "__main__":
    main()
