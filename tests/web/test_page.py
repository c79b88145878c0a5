"""The page in a real headless Chromium against the real server (echo model, SQLite)."""

from __future__ import annotations

import os
import re
from functools import partial
from pathlib import Path
from typing import Any

import trio
from speech.speech_support import needs_espeak
from support import (
    RunningServer,
    add_user,
    make_settings,
    open_conversation,
    run_server,
    serve_until_stopped,
)

from pichat_trio.adapters.ai.echo import ECHO_NOTICE

from .browser import Page, expect, in_browser, needs_browser, on_trio, open_page

pytestmark = needs_browser

PACE = {"ECHO_TOKENS_PER_SECOND": "25"}
"""Slow enough to watch an answer grow and to stop a long one, fast enough for a short one."""

COUNTING = "one two three four five six seven eight nine ten eleven"
"""About 20 tokens with the echo's notice: 0.8 s to watch it grow, and a title (< 60 characters)."""

LONG = " ".join(f"word{n}" for n in range(400))
"""At 25 tokens a second, a 16-second answer: plenty of time to press Stop."""


def sign_in(page: Page, server: RunningServer) -> None:
    page.goto(f"{server.http_url}/#token={server.token}")
    expect(page.get_by_role("status")).to_have_text("Connected")


def answer(page: Page) -> Any:
    return page.locator("li.message.assistant").last


async def stored(server: RunningServer, title: str) -> list[dict[str, Any]]:
    """The messages of the conversation titled ``title``, as another client reads them."""
    async with server.client() as client:
        listed = await client.call("get_conversations")
        found = [c for c in listed["payload"]["conversations"] if c["title"] == title]
        assert found, listed
        reply = await client.call("get_messages", {"conversation_id": found[0]["id"]})
        messages: list[dict[str, Any]] = reply["payload"]["messages"]
        return messages


async def titles(server: RunningServer) -> list[str]:
    async with server.client() as client:
        listed = await client.call("get_conversations")
        return [c["title"] for c in listed["payload"]["conversations"]]


async def create_elsewhere(server: RunningServer, title: str) -> None:
    """Another device of the same user creates a conversation."""
    async with server.client() as other:
        await open_conversation(other, title)


def chat_steps(page: Page, server: RunningServer, shots: Path) -> None:
    sign_in(page, server)
    # The token is kept, and gone from the address bar.
    assert "token" not in page.url
    assert page.evaluate("localStorage.getItem('pichat.token')") == server.token

    # No conversation open: typing a message starts one; the answer grows token by token.
    page.evaluate(
        """() => {
        window.__seen = [];
        new MutationObserver(() => {
          const last = [...document.querySelectorAll('li.message.assistant .body')].pop();
          if (last) window.__seen.push(last.textContent.trim().length);
        }).observe(document.getElementById('messages'),
                   {childList: true, subtree: true, characterData: true});
        }"""
    )
    box = page.get_by_role("textbox", name="Message")
    box.fill(COUNTING)
    box.press("Enter")
    expect(box).to_have_value("")
    expect(page.get_by_role("button", name=COUNTING)).to_be_visible()
    expect(page.get_by_text("PiChat is typing")).to_be_visible()
    full = f"{ECHO_NOTICE} You said: {COUNTING}"
    expect(answer(page)).to_have_attribute("data-status", "complete")
    expect(answer(page).locator(".body")).to_have_text(full)
    expect(page.get_by_text("PiChat is typing")).to_be_hidden()
    seen = page.evaluate("window.__seen")
    growth = sorted(set(seen))
    assert len(growth) >= 4, seen  # drawn in several steps, not at once
    assert seen == sorted(seen), seen
    assert growth[-1] == len(full)
    page.screenshot(path=shots / "answered.png")
    stop_steps(page, server)
    rename_reload_live_delete_steps(page, server, shots)


def stop_steps(page: Page, server: RunningServer) -> None:
    box = page.get_by_role("textbox", name="Message")
    # A long answer is stopped: Stop shows while it streams, the partial answer stays.
    box.fill(LONG)
    box.press("Enter")
    stop = page.get_by_role("button", name="Stop")
    expect(stop).to_be_visible()
    expect(page.get_by_role("button", name="Send")).to_be_hidden()
    expect(answer(page).locator(".body")).to_contain_text("word5 ")
    stop.click()
    expect(answer(page)).to_have_attribute("data-status", "cancelled")
    expect(answer(page)).to_contain_text("Stopped")
    expect(stop).to_be_hidden()
    expect(page.get_by_role("button", name="Send")).to_be_visible()
    messages = on_trio(stored, server, COUNTING)
    assert [m["status"] for m in messages] == ["complete", "complete", "complete", "cancelled"]
    partial = messages[-1]["content"]
    assert "word5 " in partial and "word399" not in partial
    expect(answer(page).locator(".body")).to_have_text(partial)


def rename_reload_live_delete_steps(page: Page, server: RunningServer, shots: Path) -> None:
    # Rename.
    page.get_by_role("button", name="Rename").click()
    page.get_by_role("textbox", name="Title").fill("Renamed chat")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("button", name="Renamed chat")).to_be_visible()
    expect(page.get_by_role("heading", name="Renamed chat")).to_be_visible()
    assert on_trio(titles, server) == ["Renamed chat"]

    # Reload: still signed in, the open conversation and its history back.
    page.reload()
    expect(page.get_by_role("status")).to_have_text("Connected")
    expect(page.get_by_role("heading", name="Renamed chat")).to_be_visible()
    expect(page.locator("li.message")).to_have_count(4)
    expect(page.get_by_role("textbox", name="Access token")).to_be_hidden()

    # Live: another device creates a conversation, and talks in this one.
    on_trio(create_elsewhere, server, "From the Pi")
    expect(page.get_by_role("button", name="From the Pi")).to_be_visible()
    expect(page.locator("#conversation-list button").first).to_have_text("From the Pi")

    # Delete (after a confirmation).
    page.get_by_role("button", name="Renamed chat").click()
    page.get_by_role("button", name="Delete", exact=True).click()
    page.get_by_role("button", name="Delete conversation").click()
    expect(page.get_by_role("button", name="Renamed chat")).to_have_count(0)
    expect(page.locator("li.message")).to_have_count(0)
    assert on_trio(titles, server) == ["From the Pi"]
    page.screenshot(path=shots / "deleted.png")


async def test_sign_in_chat_stop_rename_reload_live_and_delete(tmp_path):
    async with run_server(make_settings(tmp_path, PACE)) as server:
        await in_browser(_run, chat_steps, server, tmp_path / "shots")


def _run(steps: Any, server: RunningServer, shots: Path, **options: Any) -> None:
    with open_page(shots, **options) as page:
        steps(page, server, shots)


def live_steps(page: Page, server: RunningServer, shots: Path) -> None:
    sign_in(page, server)
    page.get_by_role("textbox", name="Message").fill("first words")
    page.get_by_role("button", name="Send").click()
    expect(answer(page)).to_have_attribute("data-status", "complete")
    # Another device sends into the open conversation: its message and the streamed
    # answer appear here.
    on_trio(_other_device_says, server, "from my phone")
    expect(page.locator("li.message.user").last).to_have_text(re.compile("from my phone"))
    expect(answer(page).locator(".body")).to_have_text(f"{ECHO_NOTICE} You said: from my phone")
    expect(page.get_by_role("heading", name="Renamed there")).to_be_visible()
    expect(page.get_by_role("button", name="Renamed there")).to_be_visible()
    # And its settings change shows in the settings panel.
    page.get_by_role("button", name="Settings").click()
    expect(page.get_by_role("combobox", name="Accent")).to_have_value("british")
    page.get_by_role("combobox", name="Model").select_option("gpt-3.5")
    page.get_by_role("textbox", name="Personality").fill("Be brief.")
    page.get_by_role("button", name="Save settings").click()
    expect(page.get_by_role("dialog")).to_be_hidden()
    settings = on_trio(_settings, server)
    assert settings["selected_model"] == "gpt-3.5"
    assert settings["assistant_personality"] == "Be brief."
    assert settings["voice_settings"]["accent"] == "british"
    # A refused setting is shown in words, the panel stays open.
    page.get_by_role("button", name="Settings").click()
    page.get_by_role("textbox", name="Personality").fill("x" * 4001)
    page.evaluate("document.getElementById('setting-personality').removeAttribute('maxlength')")
    page.get_by_role("textbox", name="Personality").fill("x" * 4001)
    page.get_by_role("button", name="Save settings").click()
    expect(page.locator("#settings-error")).to_contain_text("assistant_personality")
    page.get_by_role("button", name="Cancel").click()


async def _other_device_says(server: RunningServer, text: str) -> None:
    async with server.client() as other:
        listed = await other.call("get_conversations")
        conversation_id = listed["payload"]["conversations"][0]["id"]
        await other.call("update_settings", {"voice_settings": {"accent": "british"}})
        await other.call("update_conversation", {"id": conversation_id, "title": "Renamed there"})
        await other.request("send_message", {"conversation_id": conversation_id, "content": text})
        await other.expect("conversation_updated")


async def _settings(server: RunningServer) -> dict[str, Any]:
    async with server.client() as client:
        reply = await client.call("get_settings")
        settings: dict[str, Any] = reply["payload"]
        return settings


async def test_other_devices_messages_streams_and_settings_appear_live(tmp_path):
    async with run_server(make_settings(tmp_path, PACE)) as server:
        await in_browser(_run, live_steps, server, tmp_path / "shots")


NASTY = (
    "Look: **bold**, `code` and a list:\n\n- one\n- two\n\n"
    "```python\nprint('<b>hi</b>')\n```\n\n"
    '<script>window.__pwned = 1</script> <img src=x onerror="window.__pwned = 2">\n\n'
    "[a link](javascript:window.__pwned=3) and [a good one](https://example.org/)"
)


def markdown_steps(page: Page, server: RunningServer, shots: Path) -> None:
    sign_in(page, server)
    box = page.get_by_role("textbox", name="Message")
    box.fill(NASTY)
    box.press("Enter")
    body = answer(page).locator(".body")
    expect(answer(page)).to_have_attribute("data-status", "complete")
    # Formatted ...
    expect(body.locator("strong")).to_have_text("bold")
    expect(body.locator("li")).to_have_text(["one", "two"])
    expect(body.locator("pre code")).to_have_text("print('<b>hi</b>')\n")
    expect(body.get_by_role("link", name="a good one")).to_have_attribute(
        "href", "https://example.org/"
    )
    # ... never live: the markup is text, every word of it still there.
    assert body.locator("script, img, iframe").count() == 0
    assert page.locator("#messages script, #messages img").count() == 0
    text = body.text_content() or ""
    assert "<script>window.__pwned = 1</script>" in text
    assert '<img src=x onerror="window.__pwned = 2">' in text
    bad_link = body.get_by_role("link", name="a link")
    if bad_link.count():
        assert "javascript" not in (bad_link.get_attribute("href") or "")
    else:
        assert "a link" in text
    # The user's own copy is plain text, as typed.
    expect(page.locator("li.message.user .body")).to_have_text(NASTY)
    assert page.evaluate("window.__pwned") is None
    page.screenshot(path=shots / "markdown.png")


async def test_answers_render_as_markdown_and_markup_stays_text(tmp_path):
    async with run_server(make_settings(tmp_path)) as server:
        await in_browser(_run, markdown_steps, server, tmp_path / "shots")


def signin_steps(page: Page, server: RunningServer, shots: Path) -> None:
    page.goto(server.http_url + "/")
    token = page.get_by_role("textbox", name="Access token")
    expect(token).to_be_visible()
    token.fill("wrong-token-0123456789")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert").first).to_have_text(
        "The server did not accept this token (or too many of your devices are connected)."
    )
    assert page.evaluate("localStorage.getItem('pichat.token')") is None
    token.fill(server.token)
    token.press("Enter")
    expect(page.get_by_role("status")).to_have_text("Connected")
    page.get_by_role("button", name="Sign out").click()
    expect(token).to_be_visible()
    assert page.evaluate("localStorage.getItem('pichat.token')") is None


async def test_the_sign_in_form_refuses_a_wrong_token_in_words(tmp_path):
    async with run_server(make_settings(tmp_path)) as server:
        await in_browser(
            _run, signin_steps, server, tmp_path / "shots", allow_errors=("WebSocket connection",)
        )


def phone_steps(page: Page, server: RunningServer, shots: Path) -> None:
    sign_in(page, server)
    # Dark scheme from the system.
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(21, 23, 26)", background
    # Keyboard only: Tab reaches the controls by their names; Shift+Enter is a new line.
    names = []
    for _ in range(12):
        page.keyboard.press("Tab")
        names.append(
            page.evaluate(
                "document.activeElement.getAttribute('aria-label') || "
                "document.activeElement.textContent.trim()"
            )
        )
    assert {"Show conversations", "Message", "Talk", "Send"} <= set(names), names
    page.get_by_role("textbox", name="Message").focus()
    page.keyboard.type("line one")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("line two")
    expect(page.get_by_role("textbox", name="Message")).to_have_value("line one\nline two")
    page.keyboard.press("Enter")
    expect(page.locator("li.message.user .body")).to_have_text("line one\nline two")
    expect(answer(page)).to_have_attribute("data-status", "complete")
    # The conversation list is behind the menu button on a phone.
    conversation = page.get_by_role("button", name=re.compile("^line one"))
    expect(conversation).to_be_hidden()
    page.get_by_role("button", name="Show conversations").click()
    expect(conversation).to_be_visible()
    page.get_by_role("button", name="New conversation").click()
    expect(conversation).to_be_hidden()
    expect(page.locator("li.message")).to_have_count(0)
    # Nothing wider than the screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    # Installable: the manifest and its icons load.
    manifest = page.evaluate(
        "fetch(document.querySelector('link[rel=manifest]').href).then(r => r.json())"
    )
    assert manifest["display"] == "standalone"
    for icon in manifest["icons"]:
        status = page.evaluate(f"fetch('{icon['src']}').then(r => r.status)")
        assert status == 200, icon
    page.screenshot(path=shots / "phone.png")


async def test_phone_sized_keyboard_only_dark_and_installable(tmp_path):
    async with run_server(make_settings(tmp_path)) as server:
        await in_browser(
            _run,
            phone_steps,
            server,
            tmp_path / "shots",
            viewport={"width": 390, "height": 800},
            color_scheme="dark",
            is_mobile=True,
            has_touch=True,
        )


def voice_steps(page: Page, server: RunningServer, shots: Path) -> None:
    sign_in(page, server)
    talk = page.get_by_role("button", name="Talk")
    talk.click()  # a press (or Enter/Space) starts; the next one sends
    expect(page.get_by_role("status")).to_have_text(re.compile(r"Recording… [3-9] s"))
    page.get_by_role("button", name="Send recording").click()
    user = page.locator("li.message.user").last
    expect(user).to_contain_text("Voice message")
    expect(answer(page)).to_have_attribute("data-status", "complete")
    expect(page.get_by_role("status")).to_have_text("Connected")
    [message] = [m for m in on_trio(_all_messages, server) if m["role"] == "user"]
    assert message["is_audio"] is True and message["audio_file"]
    assert message["content"].strip()
    expect(user.locator(".body")).to_have_text(message["content"])
    # The answer read aloud: streamed speech, played from its first chunk.
    play = answer(page).get_by_role("button", name="Play answer")
    play.click()
    expect(play).to_have_attribute("data-playing", "true")
    expect(play).to_have_attribute("data-played", re.compile(r"^[1-9][0-9]*$"))
    expect(play).to_have_text("Play")
    page.screenshot(path=shots / "voice.png")


async def _all_messages(server: RunningServer) -> list[dict[str, Any]]:
    async with server.client() as client:
        listed = await client.call("get_conversations")
        found: list[dict[str, Any]] = []
        for conversation in listed["payload"]["conversations"]:
            reply = await client.call("get_messages", {"conversation_id": conversation["id"]})
            found += reply["payload"]["messages"]
        return found


@needs_espeak
async def test_push_to_talk_sends_a_voice_message_and_answers_play(tmp_path):
    """Chromium's fake microphone plays an espeak-ng recording into the page."""
    speech = tmp_path / "speech.wav"
    await trio.run_process(
        ["espeak-ng", "-v", "en-us", "-s", "130", "-w", str(speech), "hello what time is it"]
    )
    microphone = (
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={speech}",
    )
    async with run_server(make_settings(tmp_path)) as server:
        await in_browser(_run, voice_steps, server, tmp_path / "shots", extra_args=microphone)


class Outage:
    """The server going down and coming back on the same port, driven from the page's thread."""

    def __init__(self, nursery: trio.Nursery, tmp_path: Path, server: RunningServer) -> None:
        self.nursery = nursery
        self.tmp_path = tmp_path
        self.server = server
        self.stopped = trio.Event()

    async def down(self) -> None:
        self.server.stop()
        await self.stopped.wait()

    async def change_while_down(self) -> None:
        """Another device, on another instance of the server, while this one is down."""
        done = trio.Event()
        other = await self.nursery.start(serve_until_stopped, make_settings(self.tmp_path), done)
        await create_elsewhere(other, "Made while you were away")
        other.stop()
        await done.wait()

    async def up(self) -> None:
        port = self.server.http_url.rsplit(":", 1)[1]
        settings = make_settings(self.tmp_path, {**PACE, "SERVER_PORT": port})
        self.stopped = trio.Event()
        self.server = await self.nursery.start(serve_until_stopped, settings, self.stopped)


def reconnect_steps(page: Page, outage: Outage, shots: Path) -> None:
    sign_in(page, outage.server)
    box = page.get_by_role("textbox", name="Message")
    box.fill("before the restart")
    box.press("Enter")
    expect(answer(page)).to_have_attribute("data-status", "complete")

    on_trio(outage.down)
    status = page.get_by_role("status")
    expect(status).to_have_text(re.compile("Reconnecting"))
    page.screenshot(path=shots / "reconnecting.png")
    on_trio(outage.change_while_down)
    on_trio(outage.up)
    expect(status).to_have_text("Connected")
    # What changed while the page was away is loaded again, the open conversation kept.
    expect(page.get_by_role("button", name="Made while you were away")).to_be_visible()
    expect(page.get_by_role("heading", name="before the restart")).to_be_visible()
    expect(page.locator("li.message")).to_have_count(2)
    box.fill("after the restart")
    box.press("Enter")
    expect(answer(page).locator(".body")).to_have_text(f"{ECHO_NOTICE} You said: after the restart")


async def test_the_page_reconnects_after_a_restart_and_reloads_what_changed(tmp_path):
    async with trio.open_nursery() as nursery:
        stopped = trio.Event()
        server = await nursery.start(serve_until_stopped, make_settings(tmp_path, PACE), stopped)
        outage = Outage(nursery, tmp_path, server)
        outage.stopped = stopped
        # While the server is down the browser says so: failed connections, a failed /healthz.
        allow = ("WebSocket connection", "Failed to load resource")
        await in_browser(_run, reconnect_steps, outage, tmp_path / "shots", allow_errors=allow)
        outage.server.stop()


async def _many(server: RunningServer) -> None:
    """35 conversations, the newest holding 120 messages (60 questions and answers)."""
    async with server.client() as client:
        for n in range(34):
            await open_conversation(client, f"Old {n:02}")
        busy = await open_conversation(client, "Long history")
        for n in range(60):
            payload = {"conversation_id": busy, "content": f"question {n:02}"}
            await client.request("send_message", payload)
            while True:
                frame = await client.receive()
                if frame["action"] == "conversation_updated" and frame["payload"]["id"] == busy:
                    break


def paging_steps(page: Page, server: RunningServer, shots: Path) -> None:
    on_trio(_many, server)
    sign_in(page, server)
    conversations = page.locator("#conversation-list button")
    expect(conversations).to_have_count(30)
    expect(conversations.first).to_have_text("Long history")  # newest activity first
    expect(conversations.nth(1)).to_have_text("Old 33")
    page.get_by_role("button", name="Load more conversations").click()
    expect(conversations).to_have_count(35)
    expect(conversations.last).to_have_text("Old 00")
    expect(page.get_by_role("button", name="Load more conversations")).to_be_hidden()

    conversations.first.click()
    messages = page.locator("li.message")
    expect(messages).to_have_count(50)
    expect(messages.first).to_have_text(re.compile("question 35"))
    older = page.get_by_role("button", name="Load older messages")
    older.click()
    expect(messages).to_have_count(100)
    expect(messages.first).to_have_text(re.compile("question 10"))
    older.click()
    expect(messages).to_have_count(120)
    expect(messages.first).to_have_text(re.compile("question 00"))
    expect(older).to_be_hidden()
    expect(messages.last.locator(".body")).to_have_text(f"{ECHO_NOTICE} You said: question 59")


async def test_conversations_and_history_load_page_by_page(tmp_path):
    async with run_server(make_settings(tmp_path, {"RATE_LIMIT_BURST": "1000"})) as server:
        await in_browser(_run, paging_steps, server, tmp_path / "shots")


DOCS_SHOT = Path(__file__).resolve().parents[2] / "docs" / "page.png"


def readme_steps(page: Page, server: RunningServer, shots: Path) -> None:
    for title in ["Trip to Kraków", "Dinner ideas"]:
        on_trio(create_elsewhere, server, title)
    sign_in(page, server)
    box = page.get_by_role("textbox", name="Message")
    box.fill(
        "Plan a **weekend** in Gdańsk:\n\n1. Old Town walk\n2. Westerplatte\n3. Sopot pier\n\n"
        "```python\nprint('packing list')\n```"
    )
    box.press("Enter")
    expect(answer(page)).to_have_attribute("data-status", "complete")
    page.get_by_role("textbox", name="Message").click()
    page.screenshot(path=shots / "readme.png")
    if os.environ.get("PICHAT_UPDATE_DOCS") == "1":
        page.screenshot(path=DOCS_SHOT)


async def test_the_readme_screenshot(tmp_path):
    """PICHAT_UPDATE_DOCS=1 writes it to docs/page.png."""
    async with run_server(make_settings(tmp_path)) as server:
        await in_browser(_run, readme_steps, server, tmp_path / "shots")


def revoked_steps(page: Page, server: RunningServer, shots: Path, *, token: str) -> None:
    page.goto(f"{server.http_url}/#token={token}")
    expect(page.get_by_role("status")).to_have_text("Connected")
    on_trio(_revoke, server, "carol")
    expect(page.get_by_role("textbox", name="Access token")).to_be_visible()
    expect(page.get_by_role("alert").first).to_have_text(
        "This token is no longer accepted; sign in again."
    )
    assert page.evaluate("localStorage.getItem('pichat.token')") is None


async def _revoke(server: RunningServer, name: str) -> None:
    db = server.app.db
    assert await db.run(db.repository.revoke_user, name)


async def test_a_revoked_token_signs_the_page_out(tmp_path):
    async with run_server(make_settings(tmp_path)) as server:
        token = await add_user(server, "carol")
        steps = partial(revoked_steps, token=token)
        await in_browser(_run, steps, server, tmp_path / "shots")
