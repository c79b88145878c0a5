"""The ``chat`` and ``voice`` subcommands of ``pichat``: their options, and running them.

Only argparse here, so ``pichat --help`` does not import the clients' libraries.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["HELP", "add_client_commands", "run_client"]

HELP = """commands:
  /new [TITLE]   start a new conversation (titled by TITLE, or by your next message)
  /list          list your conversations, newest first
  /open N        open conversation N of the last /list, and show its latest messages
  /title TEXT    rename the current conversation
  /stop          stop the answer being written (Ctrl-C does too)
  /help          this help
  /quit          leave (Ctrl-D does too)"""

_CONNECTION = """connection (options win over the environment):
  PICHAT_URL     the server's WebSocket, e.g. ws://127.0.0.1:8080/ws or wss://NAME.azurewebsites.net/ws
  PICHAT_TOKEN   your token (API_TOKEN, or one from `pichat users add`)"""


def _connection_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", help="the server's WebSocket URL (default: PICHAT_URL)")
    parser.add_argument("--token", help="your access token (default: PICHAT_TOKEN)")


def add_client_commands(commands: Any) -> None:
    """Add ``chat`` and ``voice`` to ``pichat``'s subcommands."""
    chat = commands.add_parser(
        "chat",
        help="chat with PiChat in this terminal",
        description="Chat in the terminal: a typed line goes to the current conversation "
        "(one is created if none is open) and the answer streams onto the screen.",
        epilog=f"{HELP}\n\n{_CONNECTION}",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _connection_options(chat)
    voice = commands.add_parser(
        "voice",
        help="the Raspberry Pi voice client: talk, hear the answer",
        description="Talk to PiChat: record from the microphone (push-to-talk with Enter or "
        "a GPIO button, or a fixed length), send it as a voice message, print the answer as "
        "it streams and play it as it is synthesised; loops, and reconnects after a server "
        "restart. With --input it does one turn with a WAV file and exits.",
        epilog=_CONNECTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _connection_options(voice)
    voice.add_argument("--input", type=Path, metavar="FILE.wav", help="one turn with this WAV")
    voice.add_argument(
        "--output-dir", type=Path, metavar="DIR", help="write each answer's speech as a WAV here"
    )
    voice.add_argument(
        "--conversation", metavar="ID", help="talk in this conversation (default: a new one)"
    )
    voice.add_argument("--language", help="speech language, e.g. en-US (default: your accent's)")
    voice.add_argument(
        "--seconds", type=float, metavar="S", help="record S seconds after Enter, not until Enter"
    )
    voice.add_argument("--gpio", type=int, metavar="PIN", help="push-to-talk on this GPIO button")
    voice.add_argument("--no-play", action="store_true", help="do not play the answers")
    voice.add_argument(
        "--live",
        action="store_true",
        help="hands-free: stream the microphone over a voice session, hear answers as they "
        "are written, talk over them (or press Enter) to interrupt",
    )
    voice.add_argument(
        "--stream-command",
        default="arecord -q -t raw -f S16_LE -r 16000 -c 1 -",
        help="--live: command that writes raw 16 kHz mono 16-bit PCM to stdout "
        "(default: %(default)s)",
    )
    voice.add_argument(
        "--echo-cancellation",
        action="store_true",
        help="--live: the microphone hears no loudspeaker (a headset, or echo cancellation)",
    )
    voice.add_argument(
        "--record-command",
        default="arecord -q -t wav -f S16_LE -r 16000 -c 1 -",
        help="command that writes a WAV to stdout until stopped (default: %(default)s)",
    )
    voice.add_argument(
        "--play-command",
        default="aplay -q -",
        help="command that plays a WAV from stdin as it arrives (default: %(default)s)",
    )


def run_client(args: argparse.Namespace) -> int:
    url = args.url or os.environ.get("PICHAT_URL", "")
    token = args.token or os.environ.get("PICHAT_TOKEN", "")
    if not url or not token:
        missing = "--url (or PICHAT_URL)" if not url else "--token (or PICHAT_TOKEN)"
        print(f"pichat {args.command}: {missing} is required", file=sys.stderr)
        return 2
    if args.command == "chat":
        from .chat import run_chat

        return run_chat(url, token)
    from .voice import run_voice

    return run_voice(url, token, args)
