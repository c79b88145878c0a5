"""A connection cut at every step of ``send_message``: no answer is left ``streaming``.

The server closes a connection by cancelling its nursery (the peer went, it
stopped reading, the server gave up on it). A trio instrument counts the
steps of the requester connection's tasks (its reader and the answer's task:
each step ends at a checkpoint where the task yielded) and cancels that
nursery after step n, for n = 1, 2, ... until the whole exchange runs
without reaching step n. After each cut, every stored message has a final
status, and the user's other device was told of every stored question.
"""

from __future__ import annotations

import itertools
from typing import Any

import trio
import trio.lowlevel
from support import make_settings, open_conversation, run_server
from trio_websocket import ConnectionClosed

from pichat_trio.transport.connection import Connection


class _CutAfter(trio.abc.Instrument):
    """Cancel ``connection``'s nursery after the ``n``-th step of its tasks."""

    def __init__(self, connection: Connection, n: int) -> None:
        # The nursery is private to the connection; the test needs the very scope
        # the server cancels when it drops a connection.
        nursery = connection._nursery
        assert nursery is not None
        self.nursery = nursery
        self.reader = nursery.parent_task
        self.n = n
        self.steps = 0
        self.fired = False

    def after_task_step(self, task: trio.lowlevel.Task) -> None:
        if self.fired:
            return
        if task is not self.reader and task.parent_nursery is not self.nursery:
            return
        self.steps += 1
        if self.steps == self.n:
            self.fired = True
            self.nursery.cancel_scope.cancel()


async def _until_reply(client: Any, request_id: str, seen: list[dict[str, Any]]) -> dict[str, Any]:
    while True:
        frame = await client.receive()
        if frame.get("request_id") == request_id:
            return frame
        seen.append(frame)


async def test_a_cut_at_any_step_of_send_leaves_no_answer_streaming(tmp_path):
    settings = make_settings(tmp_path, {"ECHO_TOKENS_PER_SECOND": "0"})
    async with run_server(settings) as server, server.client() as other:
        with trio.fail_after(120):
            seen: list[dict[str, Any]] = []  # everything the other device got
            outcomes: set[str] = set()
            for n in itertools.count(1):
                conversation_id = await open_conversation(other, f"cut {n}")
                before = set(server.app.connections)
                got: list[dict[str, Any]] = []
                async with server.client() as requester:
                    [connection] = set(server.app.connections) - before
                    cut = _CutAfter(connection, n)
                    trio.lowlevel.add_instrument(cut)
                    try:
                        await requester.request(
                            "send_message",
                            {"conversation_id": conversation_id, "content": "one two three four"},
                        )
                        try:
                            while True:
                                frame = await requester.receive()
                                got.append(frame)
                                if frame["action"] == "conversation_updated":
                                    break
                        except ConnectionClosed:
                            pass
                    finally:
                        trio.lowlevel.remove_instrument(cut)
                await server.app.chat.wait_idle()
                request_id = await other.request(
                    "get_messages", {"conversation_id": conversation_id}
                )
                listed = await _until_reply(other, request_id, seen)
                messages = listed["payload"]["messages"]
                streaming = [m for m in messages if m["status"] == "streaming"]
                assert streaming == [], (n, messages)
                questions = [m for m in messages if m["role"] == "user"]
                answers = [m for m in messages if m["role"] == "assistant"]
                assert len(answers) == len(questions) <= 1, (n, messages)
                told = {f["payload"]["message"]["id"] for f in seen if f["action"] == "new_message"}
                told |= {f["payload"]["id"] for f in got if f["action"] == "message_sent"}
                for message in messages:
                    assert message["id"] in told, (n, message)  # every device hears of it
                outcomes.add(answers[0]["status"] if answers else "nothing stored")
                if not cut.fired:
                    assert answers[0]["status"] == "complete"
                    break
            # The sweep went through both sides of the store, and past the whole answer.
            assert {"nothing stored", "interrupted", "complete"} <= outcomes, outcomes
