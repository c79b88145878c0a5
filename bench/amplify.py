"""The amplification case: one user's many connections and a request flood, another user's pings.

    .venv/bin/python bench/amplify.py                  # with the server's limits (defaults)
    .venv/bin/python bench/amplify.py --no-limits      # the per-user limits lifted: as before them

One ``pichat serve`` (echo model, fresh SQLite file, pinned to core 0) and
two users made by ``pichat users add``. The load, on core 1, is one process:

1. **baseline**: the other user's connection sends ``ping`` after ``ping``
   (each after the last ``pong``) for ``--seconds`` and times each round trip;
2. the flooding user opens ``--connections`` WebSockets (how many get
   HTTP 429 is counted); they read and drop everything, as a browser tab
   would (a raw socket each, no frame parsing, so the load stays cheap);
3. **flood**: ``--flooders`` of those connections send ``create_conversation``
   at ``--rate`` a second each (every one fans out to all of the user's
   connections) while the other user pings again for ``--seconds``.

It prints the other user's ping p50/p99/max for both phases, the handshakes'
statuses, the requests the flood sent and the bytes the flooding user's
connections received during it (its fan-out, the flood's own replies
included), and writes them as JSON with ``--json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
import trio
from run import (
    LOAD_CORE,
    PYTHON,
    SERVER_CORE,
    _free_port,
    _pinned,
    _process,
    _wait_healthy,
    base_env,
)
from trio_websocket import open_websocket_url
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, RejectConnection, Request, TextMessage

_decode = msgspec.json.decode


def _env(db: Path, port: int, limits: bool) -> dict[str, str]:
    env = base_env(db, port)
    env.update({"AI_PROVIDER": "echo", "LOG_LEVEL": "WARNING"})
    if not limits:
        env.update(
            {
                "MAX_CONNECTIONS_PER_USER": "1000000",
                "USER_RATE_LIMIT_PER_SECOND": "1000000",
                "USER_RATE_LIMIT_BURST": "1000000",
            }
        )
    return env


async def _pings(url: str, token: str, seconds: float) -> dict[str, Any]:
    """Sequential pings for ``seconds``: round trips of those answered with ``pong``, in ms.

    As fast as the server allows, as a well-behaved client: a ``rate_limited``
    answer (the connection's own budget, 30/s) is waited out for its
    ``retry_after_ms``, as the protocol asks; past its budget the server stops
    answering a client that does not.
    """
    times: list[float] = []
    async with open_websocket_url(f"{url}/ws?token={token}") as ws:
        end = trio.current_time() + seconds
        n = 0
        while trio.current_time() < end:
            n += 1
            request_id = f"p{n}"
            sent = time.perf_counter()
            await ws.send_message('{"action":"ping","request_id":"' + request_id + '"}')
            while (reply := _decode(await ws.get_message())).get("request_id") != request_id:
                pass
            if reply["action"] == "pong":
                times.append((time.perf_counter() - sent) * 1000)
            else:  # rate_limited
                await trio.sleep(reply["payload"]["retry_after_ms"] / 1000)
    times.sort()
    return {
        "pings": len(times),
        "p50_ms": round(statistics.median(times), 2),
        "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 2),
        "max_ms": round(times[-1], 2),
    }


class _Drain:
    """What one of the flooding user's connections got: its handshake's status, and
    the bytes it read and dropped afterwards."""

    def __init__(self) -> None:
        self.bytes = 0
        self.status = 0


async def _handshake(port: int, token: str) -> tuple[trio.SocketStream, int, WSConnection]:
    """Open a WebSocket with wsproto on a bare socket: the stream, the HTTP status
    (101 when upgraded) and the connection, for the frames the flood sends."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    ws = WSConnection(ConnectionType.CLIENT)
    await stream.send_all(ws.send(Request(host=f"127.0.0.1:{port}", target=f"/ws?token={token}")))
    while True:
        data = await stream.receive_some(65536)
        ws.receive_data(data or None)
        for event in ws.events():
            if isinstance(event, AcceptConnection):
                return stream, 101, ws
            if isinstance(event, RejectConnection):
                return stream, event.status_code, ws
        if not data:
            return stream, 0, ws


async def _drain(
    port: int,
    token: str,
    drain: _Drain,
    ready: trio.Event,
    sockets: list[tuple[trio.SocketStream, WSConnection]],
) -> None:
    """A WebSocket that reads and drops whatever the server sends, unparsed."""
    try:
        stream, drain.status, ws = await _handshake(port, token)
    except OSError:
        ready.set()
        return
    ready.set()
    if drain.status != 101:
        await stream.aclose()
        return
    sockets.append((stream, ws))
    while chunk := await stream.receive_some(1 << 16):
        drain.bytes += len(chunk)


async def _flood(stream: trio.SocketStream, ws: WSConnection, rate: float, seconds: float) -> int:
    sent = 0
    end = trio.current_time() + seconds
    frame = TextMessage(data='{"action":"create_conversation","request_id":"f"}')
    while trio.current_time() < end:
        await stream.send_all(ws.send(frame))
        sent += 1
        await trio.sleep(1 / rate)
    return sent


async def _scenario(args: argparse.Namespace, port: int, tokens: dict[str, str]) -> dict[str, Any]:
    url = f"ws://127.0.0.1:{port}"
    result: dict[str, Any] = {"baseline": await _pings(url, tokens["victim"], args.seconds)}
    drains = [_Drain() for _ in range(args.connections)]
    sockets: list[tuple[trio.SocketStream, WSConnection]] = []
    async with trio.open_nursery() as nursery:
        limiter = trio.Semaphore(100)
        for drain in drains:
            ready = trio.Event()
            async with limiter:
                nursery.start_soon(_drain, port, tokens["attacker"], drain, ready, sockets)
                await ready.wait()
        statuses: dict[str, int] = {}
        for drain in drains:
            statuses[str(drain.status)] = statuses.get(str(drain.status), 0) + 1
        result["handshakes"] = statuses
        before = sum(d.bytes for d in drains)
        sent: list[int] = []

        async def flood(stream: trio.SocketStream, ws: WSConnection) -> None:
            sent.append(await _flood(stream, ws, args.rate, args.seconds))

        async with trio.open_nursery() as inner:
            for stream, ws in sockets[: args.flooders]:
                inner.start_soon(flood, stream, ws)
            result["flood"] = await _pings(url, tokens["victim"], args.seconds)
        result["flood_requests"] = sum(sent)
        result["bytes_to_flooding_user"] = sum(d.bytes for d in drains) - before
        nursery.cancel_scope.cancel()
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--flooders", type=int, default=1, help="connections that flood")
    parser.add_argument("--rate", type=float, default=30, help="requests/s per flooder")
    parser.add_argument("--seconds", type=float, default=6, help="length of each phase")
    parser.add_argument("--no-limits", action="store_true", help="lift the per-user limits")
    parser.add_argument("--json", help="write the result here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "bench.db"
        port = _free_port()
        env = _env(db, port, limits=not args.no_limits)
        made = subprocess.run(
            [PYTHON, "-m", "pichat_trio", "users", "add", "attacker", "victim"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            cwd=tmp,
        ).stdout
        users = dict(line.split() for line in made.splitlines())
        server = _pinned(SERVER_CORE, [PYTHON, "-m", "pichat_trio", "serve"])
        with _process(server, env=env, cwd=tmp) as proc:
            _wait_healthy(port, proc)
            os.sched_setaffinity(0, {int(LOAD_CORE)})
            result = trio.run(_scenario, args, port, users)
    result["limits"] = not args.no_limits
    result["args"] = vars(args)
    print(json.dumps(result, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
