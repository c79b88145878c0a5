"""``pichat chat`` on a pseudo-terminal against the real server."""

from __future__ import annotations

import socket

import trio
from support import make_settings, run_server

from .terminal import open_terminal, pichat_command

LONG = " ".join(f"word{n}" for n in range(400))
"""At 20 tokens a second a 20-second answer: it is still being written when stopped."""


async def stored_statuses(server, title):
    async with server.client() as client:
        listed = await client.call("get_conversations")
        found = [c for c in listed["payload"]["conversations"] if c["title"] == title]
        reply = await client.call("get_messages", {"conversation_id": found[0]["id"]})
        return [(m["role"], m["status"]) for m in reply["payload"]["messages"]]


async def test_chat_streams_answers_and_obeys_its_commands(tmp_path):
    settings = make_settings(tmp_path, {"ECHO_TOKENS_PER_SECOND": "20"})
    async with run_server(settings) as server:
        url = server.url + "/ws"
        command = pichat_command("chat", "--url", url)
        async with await open_terminal(command, {"PICHAT_TOKEN": TOKEN}) as term:
            await term.expect("connected to ")

            # A line with no conversation open starts one; the answer streams in.
            await term.type("hello pty\r")
            await term.expect(
                r"pichat> \[echo model: no AI service is configured\] You said: hello pty\n"
            )

            # Flushed as it arrives: the first words show while the rest is still coming.
            await term.type(LONG + "\r")
            streaming = await term.expect(r"pichat> \[echo model[^\n]* word3 ")
            assert "word399" not in term.output[streaming.start() :]  # (the typed line has it)
            await term.type("/stop\r")
            await term.expect(r"\n\[stopped\]\n")

            # Ctrl-C stops an answer, and the client stays.
            await term.type(LONG + "\r")
            await term.expect(r"pichat> \[echo model[^\n]* word3 ")
            await term.type("\x03")
            await term.expect(r"\n\[stopped\]\n")  # and the client goes on:
            # ``finished`` comes before the final write (the protocol's order: the stored
            # message follows as ``new_message``), so wait for that write to end.
            await server.app.chat.wait_idle()
            assert await stored_statuses(server, "hello pty") == [
                ("user", "complete"),
                ("assistant", "complete"),
                ("user", "complete"),
                ("assistant", "cancelled"),
                ("user", "complete"),
                ("assistant", "cancelled"),
            ]

            await term.type("/new Second chat\r")
            await term.expect(r"\[new conversation: Second chat\]")
            await term.type("/list\r")
            await term.expect(r"\* +1\. Second chat  \(")
            await term.expect(r" +2\. hello pty  \(")
            await term.type("/open 2\r")
            await term.expect(r"\[hello pty\]\n")
            await term.expect(r"you> hello pty\n")
            await term.type("/title Renamed\r")
            await term.expect(r"\[renamed: Renamed\]")
            await term.type("/stop\r")
            await term.expect(r"\[no answer is being written\]")
            await term.type("/quit\r")
            assert await term.wait() == 0
    assert "Traceback" not in term.output


TOKEN = "test-token-0123456789abcdef"


async def _run(*args: str) -> trio.CompletedProcess[bytes]:
    with trio.fail_after(60):
        return await trio.run_process(
            pichat_command(*args), capture_stdout=True, capture_stderr=True, check=False
        )


async def test_a_wrong_token_and_an_unreachable_server_are_one_clear_line(tmp_path):
    async with run_server(make_settings(tmp_path)) as server:
        url = server.url + "/ws"
        wrong = await _run("chat", "--url", url, "--token", "not-the-token-at-all")
        assert wrong.returncode == 1
        assert wrong.stderr.decode() == (
            f"pichat chat: the server at {url} refused the token (HTTP 401):"
            " check --token or PICHAT_TOKEN\n"
        )
        not_ws = await _run("chat", "--url", server.url + "/nope", "--token", TOKEN)
        assert "(HTTP 404): the URL should end in /ws" in not_ws.stderr.decode()

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    unreachable = await _run("chat", "--url", f"ws://127.0.0.1:{port}/ws", "--token", TOKEN)
    assert unreachable.returncode == 1
    lines = unreachable.stderr.decode().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"pichat chat: cannot reach the server at ws://127.0.0.1:{port}/ws")
    missing = await _run("chat", "--url", f"ws://127.0.0.1:{port}/ws")
    assert missing.returncode == 2 and b"--token (or PICHAT_TOKEN) is required" in missing.stderr


async def test_both_clients_explain_themselves_in_help():
    chat = await _run("chat", "--help")
    assert chat.returncode == 0
    for text in ["--url", "--token", "/new", "/list", "/open N", "/title", "/stop", "/quit"]:
        assert text in chat.stdout.decode(), text
    voice = await _run("voice", "--help")
    assert voice.returncode == 0
    for text in ["--input", "--output-dir", "--gpio", "--seconds", "wss://", "PICHAT_TOKEN"]:
        assert text in voice.stdout.decode(), text
    top = await _run("--help")
    assert b"chat" in top.stdout and b"voice" in top.stdout
