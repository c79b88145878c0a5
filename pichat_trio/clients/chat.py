"""``pichat chat``: a terminal client.

A typed line goes to the current conversation (one is created, titled by that line,
when none is open) and the answer streams onto the screen, flushed token by token.
Slash commands manage conversations. Ctrl-C stops the answer being written; with no
answer in progress it quits. Lines from a pipe are a script: each waits for the
answer to the one before.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from typing import Any, TextIO

import trio

from .commands import HELP
from .lines import read_lines
from .session import ClientError, ServerError, Session, open_session

__all__ = ["run_chat"]

_HISTORY = 10
"""Messages shown when a conversation is opened."""


class Chat:
    def __init__(self, session: Session, out: TextIO) -> None:
        self.session = session
        self.out = out
        self.current: dict[str, Any] | None = None
        self.listed: list[dict[str, Any]] = []
        self.streaming: set[str] = set()  # conversation ids with an answer being written
        self.title_next = False  # /new without a title: the next line titles it
        self.answered = trio.Event()  # set when the answer to our last message has ended
        self.answered.set()

    def say(self, text: str = "", end: str = "\n") -> None:
        self.out.write(text + end)
        self.out.flush()

    # ---- what the server pushes --------------------------------------------------------

    async def show_events(self) -> None:
        async for frame in self.session.events:
            self.show(frame["action"], frame.get("payload") or {})

    def show(self, action: str, p: dict[str, Any]) -> None:
        current = self.current["id"] if self.current else None
        if action == "message_stream" and p.get("conversation_id") == current:
            if p["conversation_id"] not in self.streaming:
                self.streaming.add(p["conversation_id"])
                self.say("pichat> ", end="")
            self.say(p.get("token", ""), end="")
            if p.get("finished"):
                self.streaming.discard(p["conversation_id"])
                self.answered.set()
                reason = str(p.get("finish_reason"))
                self.say("" if reason == "stop" else f"\n[{_FINISHED.get(reason, reason)}]")
        elif action == "new_message" and p["message"]["conversation_id"] == current:
            message = p["message"]
            if message["role"] == "user":  # typed on another device
                self.say(f"(from another device) you> {message['content']}")
        elif action == "conversation_updated" and p.get("id") == current:
            self.current = p
        elif action == "conversation_deleted" and p.get("id") == current:
            self.current = None
            self.say("[this conversation was deleted on another device]")
        elif action == "error":
            self.say(f"error: {p.get('message') or p.get('code')}")

    # ---- what the user types -----------------------------------------------------------

    async def handle(self, line: str) -> bool:
        """Act on one typed line; False to quit."""
        text = line.rstrip("\r\n")
        if not text.strip():
            return True
        if not text.startswith("/"):
            await self.send(text)
            return True
        command, _, rest = text.partition(" ")
        rest = rest.strip()
        if command in ("/quit", "/exit"):
            return False
        handler = self._commands().get(command)
        if handler is None:
            self.say(f"unknown command {command}; /help lists them")
            return True
        try:
            await handler(rest)
        except ServerError as error:
            self.say(f"error: {error}")
        return True

    def _commands(self) -> dict[str, Callable[[str], Any]]:
        return {
            "/new": self.new,
            "/list": self.list,
            "/open": self.open,
            "/title": self.title,
            "/stop": self.stop,
            "/help": self.help,
        }

    async def send(self, text: str) -> None:
        try:
            if self.current is None or self.title_next:
                title = " ".join(text.split())[:60]
                self.current = await self.session.call("create_conversation", {"title": title})
                self.title_next = False
            payload = {"conversation_id": self.current["id"], "content": text}
            self.answered = trio.Event()
            await self.session.call("send_message", payload, until="message_sent")
        except ServerError as error:
            self.answered.set()
            self.say(f"error: {error}")

    async def new(self, title: str) -> None:
        if title:
            self.current = await self.session.call("create_conversation", {"title": title[:200]})
            self.title_next = False
            self.say(f"[new conversation: {self.current['title']}]")
        else:
            self.title_next = True
            self.say("[new conversation: your next message starts it]")

    async def list(self, _: str) -> None:
        reply = await self.session.call("get_conversations", {"limit": 50})
        self.listed = reply["conversations"]
        if not self.listed:
            self.say("no conversations yet: type a message to start one")
        current = self.current["id"] if self.current else None
        for n, conversation in enumerate(self.listed, 1):
            mark = "*" if conversation["id"] == current else " "
            when = (conversation.get("updated_at") or "")[:16].replace("T", " ")
            self.say(f"{mark}{n:3}. {conversation['title'] or 'Untitled'}  ({when} UTC)")

    async def open(self, number: str) -> None:
        if not number.isdigit() or not 1 <= int(number) <= len(self.listed):
            self.say("usage: /open N, with N from /list")
            return
        self.current = self.listed[int(number) - 1]
        self.title_next = False
        payload = {"conversation_id": self.current["id"], "limit": _HISTORY}
        reply = await self.session.call("get_messages", payload)
        self.say(f"[{self.current['title']}]")
        for message in reply["messages"]:
            who = "you" if message["role"] == "user" else "pichat"
            self.say(f"{who}> {message['content']}")

    async def title(self, text: str) -> None:
        if self.current is None or not text:
            self.say("usage: /title TEXT, in an open conversation")
            return
        payload = {"id": self.current["id"], "title": text[:200]}
        self.current = await self.session.call("update_conversation", payload)
        self.say(f"[renamed: {self.current['title']}]")

    async def stop(self, _: str = "") -> None:
        if self.current is None or self.current["id"] not in self.streaming:
            self.say("[no answer is being written]")
            return
        try:
            await self.session.call("cancel_generation", {"conversation_id": self.current["id"]})
        except ServerError as error:
            if error.code != "not_found":  # it had just finished
                raise

    async def help(self, _: str) -> None:
        self.say(HELP)

    @property
    def answering(self) -> bool:
        return self.current is not None and self.current["id"] in self.streaming


_FINISHED = {
    "cancelled": "stopped",
    "interrupted": "interrupted",
    "length": "cut short: the answer reached its length limit",
    "content_filter": "stopped by the content filter",
    "error": "the AI service failed",
}


async def _chat(url: str, token: str, stdin: TextIO, out: TextIO) -> int:
    async with open_session(url, token) as session:
        chat = Chat(session, out)
        chat.say(f"connected to {url}; type a message, /help for commands, /quit to leave")
        lines_in, lines = trio.open_memory_channel[str](0)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(chat.show_events)
            nursery.start_soon(read_lines, lines_in, stdin)
            nursery.start_soon(_interrupts, chat, nursery.cancel_scope)
            # Lines from a pipe or file are a script: each waits for the answer before it.
            script = not stdin.isatty()
            async for line in lines:
                if not await chat.handle(line):
                    break
                if script:
                    await chat.answered.wait()
            else:  # end of input: let the last answer finish
                await chat.answered.wait()
            nursery.cancel_scope.cancel()
    return 0


async def _interrupts(chat: Chat, scope: trio.CancelScope) -> None:
    """Ctrl-C stops the answer being written; with none, it quits."""
    with trio.open_signal_receiver(signal.SIGINT) as signals:
        async for _ in signals:
            if chat.answering:
                await chat.stop()
            else:
                chat.say("")
                scope.cancel()
                return


def run_chat(url: str, token: str) -> int:
    try:
        return trio.run(_chat, url, token, sys.stdin, sys.stdout)
    except ClientError as error:
        print(f"pichat chat: {error}", file=sys.stderr)
        return 1
