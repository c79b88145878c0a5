"""Three small costs the round's changes rest on, each measured alone.

    .venv/bin/python bench/micro.py [--repeat N]

- ``tls``: CPU for a TLS handshake over loopback (client and server in this
  process, so both ends are counted): what a connection opened ahead
  (``AI_PRECONNECT``) keeps out of a message's time to first token.
- ``scope``: a trio checkpoint with and without a cancel scope with a
  deadline around it: what a read timeout kept by one task
  (``adapters/ai/read_deadlines.py``) saves per upstream read.
- ``sqlite``: a finish of 50 answers started 0.5 ms into a checkpoint of
  200 in another thread, through the repository (writers queue on its
  lock), and the same with the two transactions left to SQLite's busy
  handler (``--no-lock``).
"""

from __future__ import annotations

import argparse
import contextlib
import ssl
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import trio
import trustme

from pichat_trio import models
from pichat_trio.adapters.sql.engine import create_engine
from pichat_trio.adapters.sql.migrate import upgrade
from pichat_trio.adapters.sql.repository import SqlRepository


def tls(repeat: int) -> str:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)

    async def main() -> float:
        async def handler(stream: trio.SocketStream) -> None:
            tls_stream = trio.SSLStream(stream, server_context, server_side=True)
            with contextlib.suppress(trio.BrokenResourceError):
                await tls_stream.do_handshake()
                await tls_stream.receive_some(1)

        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(trio.serve_tcp, handler, 0)
            port = listeners[0].socket.getsockname()[1]
            start = time.process_time()
            for _ in range(repeat):
                tcp = await trio.open_tcp_stream("127.0.0.1", port)
                tls_stream = trio.SSLStream(tcp, client_context, server_hostname="127.0.0.1")
                await tls_stream.do_handshake()
                await tls_stream.aclose()
            spent = time.process_time() - start
            nursery.cancel_scope.cancel()
        return spent / repeat

    return f"tls: {trio.run(main) * 1e3:.2f} ms of CPU per handshake (both ends)"


def scope(repeat: int) -> str:
    async def main() -> tuple[float, float]:
        count = repeat * 1000
        start = time.perf_counter()
        for _ in range(count):
            await trio.lowlevel.checkpoint()
        bare = (time.perf_counter() - start) / count
        start = time.perf_counter()
        for _ in range(count):
            with trio.CancelScope(deadline=trio.current_time() + 30):
                await trio.lowlevel.checkpoint()
        return bare, (time.perf_counter() - start) / count

    bare, scoped = trio.run(main)
    return (
        f"scope: checkpoint {bare * 1e6:.2f} us, with a deadline scope {scoped * 1e6:.2f} us "
        f"(the scope: {(scoped - bare) * 1e6:.2f} us)"
    )


def sqlite(repeat: int, lock: bool) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{Path(tmp) / 'micro.db'}", 8)
        upgrade(engine)
        repo = SqlRepository(engine, models.Settings("gpt-4", models.VoiceSettings(), "x"))
        if not lock:
            repo._writer = contextlib.nullcontext()  # SQLite's busy handler alone
        user = repo.ensure_user("micro", "micro-token-0123456789")
        requests = [
            models.ExchangeRequest(user.id, repo.create_conversation(user.id, "N").id, "hi")
            for _ in range(200)
        ]
        exchanges = [e for e in repo.start_exchanges(requests) if e is not None]
        rows = [(user.id, e.answer.id, " word" * 500) for e in exchanges]
        finishes = [
            models.FinishRequest(user.id, e.answer.id, " word" * 500, "complete")
            for e in exchanges[:50]
        ]
        times = []
        for _ in range(repeat):
            other = threading.Thread(target=repo.checkpoint_messages, args=(rows,))
            other.start()
            time.sleep(0.0005)
            start = time.perf_counter()
            repo.finish_messages(finishes)
            times.append(time.perf_counter() - start)
            other.join()
        engine.dispose()
    how = "writers queued on the lock" if lock else "SQLite's busy handler"
    return (
        f"sqlite ({how}): finish of 50 during a checkpoint of 200: median "
        f"{statistics.median(times) * 1e3:.1f} ms, max {max(times) * 1e3:.1f} ms"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=100, help="tries per figure")
    parser.add_argument("--no-lock", action="store_true", help="sqlite: without the lock")
    args = parser.parse_args(argv)
    print(tls(args.repeat))
    print(scope(args.repeat))
    print(sqlite(max(args.repeat // 3, 1), lock=not args.no_lock))
    return 0


if __name__ == "__main__":
    sys.exit(main())
