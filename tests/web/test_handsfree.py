"""The page's hands-free mode: a voice session in Chromium, its fake microphone playing
espeak-ng speech into the page in real time (and again, looping, after a long pause)."""

from __future__ import annotations

import re
from pathlib import Path

import trio
from support import RunningServer, make_settings, run_server
from voice.voice_support import needs_espeak

from pichat_trio.ports import PcmAudio
from pichat_trio.wav import encode_wav, parse_wav

from .browser import Page, expect, in_browser, needs_browser, on_trio, open_page
from .test_page import _all_messages, answer, sign_in

pytestmark = [needs_browser, needs_espeak]


def handsfree_steps(page: Page, server: RunningServer, shots: Path) -> None:
    sign_in(page, server)
    button = page.get_by_role("button", name="Hands-free")
    button.click()
    expect(page.get_by_role("button", name="Stop hands-free")).to_have_attribute(
        "aria-pressed", "true"
    )
    status = page.get_by_role("status")
    expect(status).to_have_text(re.compile(r"You said: \w+"))
    user = page.locator("li.message.user").last
    expect(user).to_contain_text("Voice message")
    expect(answer(page)).to_have_attribute("data-status", "complete")
    stop = page.get_by_role("button", name="Stop hands-free")
    expect(stop).to_have_attribute("data-chunks", re.compile(r"^[1-9][0-9]*$"))  # it spoke
    page.screenshot(path=shots / "handsfree.png")
    stop.click()
    expect(page.get_by_role("button", name="Hands-free")).to_have_attribute("aria-pressed", "false")
    expect(status).to_have_text("Connected")
    messages = on_trio(_all_messages, server)
    spoken = [m for m in messages if m["role"] == "user"]
    assert spoken and spoken[0]["is_audio"] is True and spoken[0]["audio_file"]
    assert spoken[0]["content"].strip()


async def test_hands_free_hears_answers_aloud_and_stops(tmp_path: Path) -> None:
    speech = tmp_path / "speech.wav"
    await trio.run_process(
        ["espeak-ng", "-v", "en-us+klatt5", "-w", str(speech), "play some music please"]
    )
    padded = tmp_path / "padded.wav"  # a long pause before the fake microphone loops
    pcm = parse_wav(speech.read_bytes(), max_seconds=60, max_bytes=1 << 24)
    pause = bytes(2 * pcm.sample_rate * 12)
    padded.write_bytes(
        encode_wav(PcmAudio(pcm.sample_rate, 1, bytes(pause[:8000]) + pcm.frames + pause))
    )
    microphone = (
        "--use-fake-ui-for-media-stream",
        "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-audio-capture={padded}",
    )
    async with run_server(make_settings(tmp_path)) as server:
        await in_browser(lambda: _open(handsfree_steps, server, tmp_path / "shots", microphone))


def _open(steps: object, server: RunningServer, shots: Path, args: tuple[str, ...]) -> None:
    with open_page(shots, extra_args=args) as page:
        steps(page, server, shots)  # type: ignore[operator]
