"""Time the per-message database calls on a SQLite file, without the server.

    .venv/bin/python bench/db_calls.py [--calls 200]

Prints the mean time of ``start_exchanges`` (storing a ``send_message``: in a
new conversation, and in one that has messages, whose history is read) and
of ``finish_messages`` (an answer's final write), each with one request per
call (a message alone) and with all requests in one call (messages sent, or
answers ending, at the same moment, as the group commit stores them).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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

        def timed(batches: list[list[Any]], call: Callable[[list[Any]], object]) -> float:
            start = time.perf_counter()
            for batch in batches:
                call(batch)
            return float(time.perf_counter() - start) / int(args.calls)

        figures = {}
        for name, size in (("one request per call", 1), (f"{args.calls} in one call", args.calls)):
            asked = requests()
            stored = repo.start_exchanges(asked)  # the answers to finish below
            asked = requests()
            batches = [asked[i : i + size] for i in range(0, len(asked), size)]
            figures["start_exchanges", name] = timed(batches, repo.start_exchanges)
            ends = [
                models.FinishRequest(user.id, e.answer.id, "an answer " * 40, "complete")
                for e in stored
                if e is not None
            ]
            ending = [ends[i : i + size] for i in range(0, len(ends), size)]
            figures["finish_messages", name] = timed(ending, repo.finish_messages)
            follow_ups = [  # the same conversations' second messages: each has a history
                models.ExchangeRequest(user.id, r.conversation_id, "and then?") for r in asked
            ]
            batches = [follow_ups[i : i + size] for i in range(0, len(follow_ups), size)]
            figures["start_exchanges, with history", name] = timed(batches, repo.start_exchanges)
        engine.dispose()
    for (call, name), seconds in figures.items():
        print(f"{call}, {name}: {seconds * 1e3:.2f} ms per message")
    return 0


if __name__ == "__main__":
    sys.exit(main())
