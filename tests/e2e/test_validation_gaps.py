"""Small validation gaps, each closed: over real sockets, as a client sees them."""

from __future__ import annotations

import io
import logging

import pytest
import sqlalchemy as sa
import trio
from support import handshake_status, make_settings, open_conversation, run_server

from pichat_trio.adapters.sql.engine import create_engine
from pichat_trio.logs import configure_logging


async def test_a_language_with_a_trailing_newline_is_refused(server):
    async with server.client() as client:
        with trio.fail_after(10):
            reply = await client.call(
                "speech_to_text", {"audio_data": "UklGRg==", "language": "en-US\n"}
            )
    assert reply["action"] == "error"
    assert reply["payload"]["code"] == "invalid_request"
    assert reply["payload"]["message"].startswith("payload.language:")


async def test_allowed_origins_compare_as_origins_and_two_origin_headers_are_refused(tmp_path):
    env = {"ALLOWED_ORIGINS": "HTTPS://Pi.Example:443/, http://localhost:8080"}
    async with run_server(make_settings(tmp_path, env)) as server:
        url = server.url + f"/ws?token={server.token}"
        for origin in ("https://pi.example", "https://PI.example:443", "http://LOCALHOST:8080/"):
            assert await handshake_status(url, [("Origin", origin)]) == 101, origin
        for origin in ("http://pi.example", "https://pi.example:8443", "http://localhost"):
            assert await handshake_status(url, [("Origin", origin)]) == 403, origin
        twice = [("Origin", "https://pi.example"), ("Origin", "https://pi.example")]
        assert await handshake_status(url, twice) == 403
        assert await handshake_status(url, [("Origin", "https://evil.example"), *twice[:1]]) == 403


HIDING = "\x1b[2J\u202eevil\u200b\u2066x\u2069\r\n\tend\x00"


async def test_titles_lose_hiding_characters_and_content_is_kept_verbatim(server):
    async with server.client() as client:
        with trio.fail_after(10):
            created = await client.call("create_conversation", {"title": "a" + HIDING[:-1]})
            assert created["payload"]["title"] == "a[2Jevilx end"
            renamed = await client.call(
                "update_conversation", {"id": created["payload"]["id"], "title": "\u202eb\x07"}
            )
            assert renamed["payload"]["title"] == "b"
            # A title made from the first message is cleaned; the message is stored as sent.
            conversation_id = await open_conversation(client, "")
            content = "\u202eHi\x1b[0m\u200b there\x07"
            await client.request(
                "send_message", {"conversation_id": conversation_id, "content": content}
            )
            updated = await client.expect("conversation_updated")
            while updated["payload"]["title"] == "New conversation":
                updated = await client.expect("conversation_updated")
            assert updated["payload"]["title"] == "Hi[0m there"
            listed = await client.call("get_messages", {"conversation_id": conversation_id})
            stored = [m["content"] for m in listed["payload"]["messages"] if m["role"] == "user"]
            assert stored == [content]


def test_log_lines_escape_what_a_client_could_hide_in_them():
    handler = configure_logging("INFO")
    stream = io.StringIO()
    handler.setStream(stream)  # type: ignore[attr-defined]
    try:
        logging.getLogger("pichat_trio.test").warning("got %s", "\x1b[2J\u202efake\nERROR x")
        try:
            raise ValueError("bad \x1b[31m value")
        except ValueError:
            logging.getLogger("pichat_trio.test").exception("failed")
    finally:
        logging.getLogger().removeHandler(handler)
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("got \\x1b[2J\\u202efake\\nERROR x")
    assert "\x1b" not in stream.getvalue() and "\u202e" not in stream.getvalue()
    assert "bad \\x1b[31m value" in stream.getvalue()  # the traceback keeps its lines
    assert len(lines) > 3


def test_database_errors_carry_no_parameters(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path}/x.db")
    with pytest.raises(sa.exc.OperationalError) as failed, engine.connect() as connection:
        connection.execute(sa.text("INSERT INTO nowhere VALUES (:c)"), {"c": "private words"})
    assert "private words" not in str(failed.value)
