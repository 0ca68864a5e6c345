"""The blocking client, for scripts and threads: ``rapidws.sync.connect``.

    python examples/sync_client.py

An echo server runs on an event loop in a thread of its own (any WebSocket
server would do); the client is plain blocking code, used from four threads
at once: sends are serialized, one thread receives.
"""

from __future__ import annotations

import asyncio
import threading

import rapidws
import rapidws.sync


def start_echo_server() -> tuple[int, asyncio.Future[None], threading.Thread]:
    """An echo server on 127.0.0.1, on a loop in a background thread, until ``stop`` is set."""
    loop = asyncio.new_event_loop()
    stop: asyncio.Future[None] = loop.create_future()
    ports: list[int] = []
    ready = threading.Event()

    async def echo(ws: rapidws.ServerConnection) -> None:
        async for message in ws:
            await ws.send(message)

    async def serve() -> None:
        async with rapidws.serve(echo, "127.0.0.1", 0) as server:
            ports.append(next(iter(server.sockets)).getsockname()[1])
            ready.set()
            await stop

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), daemon=True)
    thread.start()
    ready.wait(10)
    return ports[0], stop, thread


def main() -> None:
    port, stop, thread = start_echo_server()
    with rapidws.sync.connect(f"ws://127.0.0.1:{port}/") as ws:
        ws.send("hello")
        print(ws.recv())
        print("pong:", ws.ping().wait(5), f"{ws.latency * 1e6:.0f} µs")
        try:
            ws.recv(timeout=0.1)
        except TimeoutError:
            print("nothing within 0.1 s; the connection is still open:", ws.state)

        def sender(n: int) -> None:
            for i in range(25):
                ws.send(f"thread {n} message {i}")

        threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        echoes = [ws.recv(timeout=5) for _ in range(100)]
        for t in threads:
            t.join()
        print(len(echoes), "echoes from 4 threads; last:", echoes[-1])
    print("closed with", ws.close_code)
    stop.get_loop().call_soon_threadsafe(stop.set_result, None)
    thread.join(10)


if __name__ == "__main__":
    main()
