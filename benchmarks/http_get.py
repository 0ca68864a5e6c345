"""Plain HTTP GETs over keep-alive connections: requests per second of an App.

    python benchmarks/http_get.py [--repo PATH] [--requests 20000] [--connections 4] [--runs 3]
        [--depth 8] [--uvloop] [--path /] [--static-size 1024] [--instructions]

The server (``rapidws.App`` answering ``GET /`` with a short text, and
``/static/file`` from a folder) runs in a subprocess pinned to core 0,
importing rapidws from ``--repo`` (compare two checkouts); the client, here,
pinned to core 1, sends one request at a time on each of ``--connections``
blocking sockets in turn and reads each response whole.  The best of
``--runs`` runs is printed; every run is bounded in count and in time.
``--instructions`` runs the server under ``valgrind --tool=callgrind`` for
``--requests`` / 5 and ``--requests`` requests and prints the difference of
the totals per request: a count that machine load does not change.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

SERVER = r"""
import asyncio, sys
import rapidws

async def main(folder, use_uvloop):
    app = rapidws.App()

    @app.get("/")
    async def index(request):
        return rapidws.text_response("hello\n")

    app.static("/static", folder)
    async with app.serve("127.0.0.1", 0) as server:
        print(server.sockets[0].getsockname()[1], flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

if sys.argv[2] == "1":
    import uvloop
    uvloop.run(main(sys.argv[1], True))
else:
    asyncio.run(main(sys.argv[1], False))
"""


def read_response(sock: socket.socket, buf: bytearray) -> None:
    """Read one response with a Content-Length body from ``sock`` (leftovers stay in ``buf``)."""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(buf[:end]).lower()
            start = head.find(b"content-length:")
            length = int(head[start + 15 : head.find(b"\r\n", start)]) if start >= 0 else 0
            total = end + 4 + length
            while len(buf) < total:
                data = sock.recv(262144)
                if not data:
                    raise ConnectionError("closed mid-response")
                buf += data
            del buf[:total]
            return
        data = sock.recv(262144)
        if not data:
            raise ConnectionError("closed")
        buf += data


def run(port: int, path: str, requests: int, connections: int, depth: int, limit: float) -> float:
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(connections)]
    bufs = [bytearray() for _ in socks]
    request = f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode() * depth
    done = 0
    start = time.perf_counter()
    deadline = start + limit
    while done < requests and time.perf_counter() < deadline:
        for sock, buf in zip(socks, bufs, strict=True):
            sock.sendall(request)
            for _ in range(depth):
                read_response(sock, buf)
        done += connections * depth
    elapsed = time.perf_counter() - start
    for sock in socks:
        sock.close()
    return done / elapsed


def start_server(
    repo: str, folder: str, uvloop: bool, callgrind_out: str | None
) -> tuple[subprocess.Popen[str], int]:
    command = [sys.executable, "-c", SERVER, folder, "1" if uvloop else "0"]
    if callgrind_out is not None:
        command = ["valgrind", "--tool=callgrind", "-q", f"--callgrind-out-file={callgrind_out}"]
        command += [sys.executable, "-c", SERVER, folder, "1" if uvloop else "0"]
    env = dict(os.environ, PYTHONPATH=repo)
    server = subprocess.Popen(
        ["taskset", "-c", "0", *command],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        cwd=repo,
        text=True,
    )
    assert server.stdout is not None
    return server, int(server.stdout.readline())


def stop_server(server: subprocess.Popen[str]) -> None:
    if server.stdin is not None:
        server.stdin.close()
    server.wait(120)


def instructions(args: argparse.Namespace, folder: str) -> float:
    """The server's user-space instructions per request (callgrind, two runs' difference)."""
    totals = []
    counts = (args.requests // 5, args.requests)
    for count in counts:
        out = os.path.join(folder, f"callgrind.{count}.out")
        server, port = start_server(args.repo, folder, args.uvloop, out)
        try:
            run(port, args.path, count, args.connections, args.depth, 600.0)
        finally:
            stop_server(server)
        with open(out) as file:
            match = re.search(r"^summary:\s+(\d+)", file.read(), re.MULTILINE)
        assert match is not None, "no summary line in callgrind's output"
        totals.append(int(match.group(1)))
    return (totals[1] - totals[0]) / (counts[1] - counts[0])


def main() -> None:
    parser = argparse.ArgumentParser()
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    parser.add_argument("--repo", default=here)
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--depth", type=int, default=8, help="requests pipelined at a time")
    parser.add_argument("--uvloop", action="store_true")
    parser.add_argument("--path", default="/")
    parser.add_argument("--static-size", type=int, default=1024)
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions per request (valgrind)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        with open(os.path.join(folder, "file"), "wb") as file:
            file.write(b"x" * args.static_size)
        if hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, {1})
        if args.instructions:
            count = instructions(args, folder)
            print(f"{args.path}: {count:,.0f} instructions per request")
            return
        server, port = start_server(args.repo, folder, args.uvloop, None)
        try:
            run(port, args.path, 1000, args.connections, args.depth, 10.0)  # warm-up
            rates = [
                run(port, args.path, args.requests, args.connections, args.depth, 30.0)
                for _ in range(args.runs)
            ]
        finally:
            stop_server(server)
    print(f"{args.path}: best {max(rates):.0f} req/s ({', '.join(f'{r:.0f}' for r in rates)})")


if __name__ == "__main__":
    main()
