#!/usr/bin/env python3
"""Fan-out of the SDK stream: N connections to GET /sdk/v1/stream of a running flag server (one
asyncio process), then one write through the admin API; prints how long each connection took to
receive the change (p50, p99, last), measured from just before the write was sent.

usage: bench-fanout.py HOST:PORT TOKEN [N]"""

import asyncio
import json
import sys
import time


async def stream(host, port, token, opened, got, t0):
    r, w = await asyncio.open_connection(host, port)
    w.write(
        f"GET /sdk/v1/stream HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    await w.drain()
    buf = b""
    seen_put = False
    while True:
        chunk = await r.read(65536)
        if not chunk:
            return
        buf += chunk
        if not seen_put and b"event: put" in buf:
            seen_put = True
            buf = b""
            opened.release()
        elif seen_put and b"event: patch" in buf:
            got.append(time.perf_counter() - t0[0])
            w.close()
            return


async def main():
    addr, token = sys.argv[1], sys.argv[2]
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    host, port = addr.rsplit(":", 1)
    opened = asyncio.Semaphore(0)
    got, t0 = [], [0.0]
    tasks = [asyncio.create_task(stream(host, int(port), token, opened, got, t0)) for _ in range(n)]
    for _ in range(n):
        await opened.acquire()
    body = json.dumps({"default": time.time()})
    r, w = await asyncio.open_connection(host, int(port))
    t0[0] = time.perf_counter()
    w.write(
        f"PUT /api/v1/flags/fanout HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"If-Match: *\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
        f"Connection: close\r\n\r\n{body}".encode()
    )
    await w.drain()
    status = (await r.readline()).decode().strip()
    await asyncio.wait_for(asyncio.gather(*tasks), 60)
    got.sort()
    ms = lambda s: f"{s * 1000:.1f} ms"
    print(
        f"{n} streams, write {status!r}: p50 {ms(got[len(got) // 2])}, "
        f"p99 {ms(got[int(len(got) * 0.99) - 1])}, last {ms(got[-1])}, received {len(got)}"
    )


asyncio.run(main())
