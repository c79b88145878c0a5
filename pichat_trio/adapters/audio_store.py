"""Recorded audio of voice messages, kept as files under ``AUDIO_DIR``.

Keys are ``USER_ID/MESSAGE_UUID.wav``: a message's ``audio_file``. Writes
run in a trio thread; a file is written under a temporary name and renamed,
so a crash never leaves half a recording behind a key.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import trio

__all__ = ["LocalAudioStore"]


class LocalAudioStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_of(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if self.root.resolve() not in path.parents:
            raise ValueError(f"audio key outside the store: {key!r}")
        return path

    async def save(self, user_id: str, wav: bytes) -> str:
        key = f"{uuid.UUID(user_id)}/{uuid.uuid4()}.wav"
        await trio.to_thread.run_sync(self._write, self.path_of(key), wav)
        return key

    async def load(self, key: str) -> bytes:
        return await trio.to_thread.run_sync(self.path_of(key).read_bytes)

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".part")
        with open(partial, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        partial.replace(path)
