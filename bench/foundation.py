"""Foundation figures: time to create an account, and authenticated GET /v1/agents latency
through the real ASGI server (uvicorn), PostgreSQL and Redis.

    .venv/bin/python bench/foundation.py [--accounts 10] [--requests 500]
"""

from __future__ import annotations

import argparse
import statistics
import time
import uuid

from _harness import free_port, percentile, setup_django, start_server


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=10)
    parser.add_argument("--requests", type=int, default=500)
    args = parser.parse_args()
    setup_django()
    import requests

    from tenants.db import tenant_connection
    from tenants.services import create_account

    timings = []
    accounts = []
    for i in range(args.accounts):
        started = time.perf_counter()
        account, key = create_account(
            name=f"Bench {i}",
            domain=f"bench-{uuid.uuid4().hex[:8]}.localhost",
            api_rate_per_second=100_000,
            api_burst=100_000,
        )
        timings.append(time.perf_counter() - started)
        tenant_connection().set_schema_to_public()
        accounts.append((account, key))

    _, key = accounts[-1]
    port = free_port()
    server = start_server(port)
    try:
        session = requests.Session()
        headers = {"Authorization": f"Bearer {key.api_key.key_id}:{key.secret}", "Host": "api.localhost"}
        url = f"http://127.0.0.1:{port}/v1/agents"
        for i in range(5):
            session.post(url, json={"name": f"agent {i}"}, headers=headers).raise_for_status()
        for _ in range(20):  # warm-up
            session.get(url, headers=headers)
        latencies = []
        for _ in range(args.requests):
            started = time.perf_counter()
            response = session.get(url, headers=headers)
            latencies.append((time.perf_counter() - started) * 1000)
            assert response.status_code == 200, response.text
    finally:
        server.terminate()
        server.wait()

    print(f"{'metric':<44}{'value':>12}")
    print(f"{f'create account (median of {args.accounts}), s':<44}{statistics.median(timings):>12.3f}")
    print(f"{'create account (max), s':<44}{max(timings):>12.3f}")
    print(f"{f'GET /v1/agents p50, ms ({args.requests} sequential)':<44}{percentile(latencies, 50):>12.2f}")
    print(f"{'GET /v1/agents p99, ms':<44}{percentile(latencies, 99):>12.2f}")


if __name__ == "__main__":
    main()
