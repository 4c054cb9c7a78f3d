"""Load on the web API (issue target: 0 errors, p95 <= 300 ms with 16 clients on this machine).

    python bench/load.py [--url http://host:port] [--clients 16] [--seconds 60] [--images 200] [--explain]
                         [--workers 1]

Without --url it starts ``dermlens serve`` (bundled model, rate limiting off) on a free localhost port
and stops it afterwards. Each client posts real HAM10000 images to ``POST /api/v1/predict`` one after
another for the whole time (a closed loop): the figures are requests per second, latency percentiles
from sending the request to reading the whole answer, and errors (anything but a 200 with a status).
The clients are threads over plain ``http.client`` with the multipart bodies built in advance, so the
load generator costs little of the two cores the server also runs on.
"""

from __future__ import annotations

import argparse
import csv
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np

from dermlens.inference.onnx_model import available_cpus

HAM = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "ham10000"
BOUNDARY = "dermlens-load-boundary"


def multipart(image: bytes) -> bytes:
    head = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"lesion.jpg\"\r\n"
            f"Content-Type: image/jpeg\r\n\r\n").encode()
    return head + image + f"\r\n--{BOUNDARY}--\r\n".encode()


def real_images(count: int) -> list[bytes]:
    with open(HAM / "labels.csv", newline="") as labels:
        ids = [row["image_id"] for row in csv.DictReader(labels)]
    step = max(1, len(ids) // count)
    return [(HAM / "images" / f"{image_id}.jpg").read_bytes() for image_id in ids[::step][:count]]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(workers: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "DERMLENS_RATE_LIMIT_PER_MINUTE": "0"}
    process = subprocess.Popen([sys.executable, "-m", "dermlens.cli", "serve", "--port", str(port),
                                "--workers", str(workers)], env=env, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            with urllib.request.urlopen(url + "/api/v1/health", timeout=1):
                return process, url
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit("dermlens serve did not start")


def client(url: str, path: str, bodies: list[bytes], offset: int, stop_at: float, results: list, errors: list):
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    headers = {"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"}
    i = offset
    while time.perf_counter() < stop_at:
        body = bodies[i % len(bodies)]
        i += 1
        start = time.perf_counter()
        try:
            connection.request("POST", path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
            elapsed = time.perf_counter() - start
            if response.status != 200 or b'"status"' not in payload:
                errors.append(f"HTTP {response.status}")
            else:
                results.append(elapsed)
        except (OSError, http.client.HTTPException) as error:
            errors.append(type(error).__name__)
            connection.close()
            connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=30)
    connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--explain", action="store_true", help="ask for the heatmap and mask too")
    parser.add_argument("--workers", type=int, default=1, help="server worker processes (without --url)")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()

    bodies = [multipart(image) for image in real_images(args.images)]
    process, url = (None, args.url) if args.url else start_server(args.workers)
    path = "/api/v1/predict" + ("?explain=true" if args.explain else "")
    try:
        # warm-up: one client for 2 s (the model's first calls are slow), not counted
        warm: list = []
        client(url, path, bodies, 0, time.perf_counter() + 2, warm, [])
        results: list[float] = []
        errors: list[str] = []
        stop_at = time.perf_counter() + args.seconds
        threads = [threading.Thread(target=client, args=(url, path, bodies, k * 7, stop_at, results, errors))
                   for k in range(args.clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        wall = time.perf_counter() - started
    finally:
        if process is not None:
            process.terminate()
            process.wait(timeout=20)

    latency = np.array(results) * 1000
    figures = {
        "clients": args.clients, "seconds": round(wall, 1), "explain": args.explain,
        "requests_ok": len(results), "errors": len(errors),
        "error_kinds": {kind: errors.count(kind) for kind in sorted(set(errors))},
        "requests_per_s": round(len(results) / wall, 1),
        "p50_ms": round(float(np.percentile(latency, 50)), 1) if len(latency) else None,
        "p95_ms": round(float(np.percentile(latency, 95)), 1) if len(latency) else None,
        "p99_ms": round(float(np.percentile(latency, 99)), 1) if len(latency) else None,
        "cpus": available_cpus(),
    }
    print(f"{args.clients} clients for {wall:.0f} s on {url}{path}: {figures['requests_ok']} answers, "
          f"{figures['errors']} errors, {figures['requests_per_s']} requests/s; latency p50 "
          f"{figures['p50_ms']} ms, p95 {figures['p95_ms']} ms, p99 {figures['p99_ms']} ms "
          f"(target: 0 errors, p95 <= 300 ms)")
    if args.out:
        args.out.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
