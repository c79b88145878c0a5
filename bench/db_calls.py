"""Time the per-message database calls on a SQLite file, without the server.

    .venv/bin/python bench/db_calls.py [--calls 200]

Prints the mean time of ``start_exchanges`` with one request per call (one
``send_message`` alone) and with all requests in one call (messages sent at
the same moment, as the group commit stores them).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from pichat_trio import models
from pichat_trio.adapters.sql.engine import create_engine
from pichat_trio.adapters.sql.migrate import upgrade
from pichat_trio.adapters.sql.repository import SqlRepository


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=200, help="messages per measurement")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine(f"sqlite:///{Path(tmp) / 'bench.db'}", 8)
        upgrade(engine)
        defaults = models.Settings("gpt-4", models.VoiceSettings(), "Be brief.")
        repo = SqlRepository(engine, defaults)
        user = repo.ensure_user("bench", "bench-token-0123456789")

        def requests() -> list[models.ExchangeRequest]:
            return [
                models.ExchangeRequest(
                    user.id,
                    repo.create_conversation(user.id, "New conversation").id,
                    "hello there",
                    retitle=("New conversation", "hello there"),
                )
                for _ in range(args.calls)
            ]

        alone = requests()
        start = time.perf_counter()
        for request in alone:
            repo.start_exchanges([request])
        one_by_one = (time.perf_counter() - start) / args.calls
        together = requests()
        start = time.perf_counter()
        repo.start_exchanges(together)
        grouped = (time.perf_counter() - start) / args.calls
        engine.dispose()
    print(f"start_exchanges, one request per call: {one_by_one * 1e3:.2f} ms per message")
    print(f"start_exchanges, {args.calls} requests in one call: {grouped * 1e3:.2f} ms per message")
    return 0


if __name__ == "__main__":
    sys.exit(main())
