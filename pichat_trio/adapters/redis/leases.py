"""One answer per conversation across instances, and cancels that reach the answer's instance.

A generation holds a Redis key for its conversation, set with an expiry
(``SET key token PX lease`` in a script, only when the key is free or is
ours being released: ``SET NX PX`` that can take over our own lease).
Whoever holds it, on any instance, makes a second ``send_message`` there
``busy``. The token names the instance (``instance:nonce``). One task
renews every key this instance holds, in one script call each third of
the lease; a release deletes the key only while it still holds our token.
An instance that dies stops renewing, and its keys expire after one lease.

``cancel_elsewhere`` reads the key to find the instance that runs the
answer and asks it on its control channel; that instance cancels it and
answers with the message id.

While Redis is down the instance works alone: a lease is granted locally
(the conversation is still one-at-a-time on this instance) and set in
Redis by the first renewal once it is back, unless another instance took
it meanwhile; releases wait for Redis; a cancel reaches only this
instance's answers.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import Any

import coredis
import trio

from .hub import RedisHub
from .link import Link

__all__ = ["RedisLeases"]

log = logging.getLogger(__name__)

_KEY = "pichat:busy:"
_CALL_TIMEOUT = 1.0  # seconds a lease command may take before we go on alone
_CANCEL_WAIT = 3.0  # seconds to wait for the owner's answer to a cancel

# KEYS: the leases; ARGV[1]: milliseconds, ARGV[i + 1]: the token of KEYS[i]. A lease
# that is gone (Redis restarted, or it was granted while Redis was away) is taken again
# when free; one another instance took meanwhile is left to it.
_RENEW = """
local renewed = 0
for i, key in ipairs(KEYS) do
  local current = redis.call('GET', key)
  if current == ARGV[i + 1] then
    redis.call('PEXPIRE', key, ARGV[1])
    renewed = renewed + 1
  elseif current == false then
    redis.call('SET', key, ARGV[i + 1], 'PX', ARGV[1])
    renewed = renewed + 1
  end
end
return renewed
"""
# KEYS[1]: the lease; ARGV: our new token, the token of ours being released (or ""), ms.
_TAKE = """
local current = redis.call('GET', KEYS[1])
if current == false or current == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

CancelHere = Callable[[str, str], tuple[bool, str | None]]
_Errors = (coredis.exceptions.RedisError, OSError, trio.TooSlowError)


def _key(user_id: str, conversation_id: str) -> str:
    return f"{_KEY}{user_id}:{conversation_id}"


class RedisLeases:
    def __init__(
        self,
        client: coredis.Redis[bytes],
        link: Link,
        hub: RedisHub,
        lease_seconds: float,
        cancel_here: CancelHere | None = None,
    ) -> None:
        self._client = client
        self._link = link
        self._hub = hub
        self._instance = hub.instance_id
        self._lease_ms = max(1, int(lease_seconds * 1000))
        self._held: dict[str, bytes] = {}
        self._releases: list[tuple[str, bytes]] = []
        self._releasing: dict[str, bytes] = {}  # sent to Redis, not answered yet
        self._release_wanted = trio.Event()
        self._answers: dict[str, tuple[trio.Event, list[Any]]] = {}
        self.cancel_here: CancelHere = cancel_here or (lambda user, conversation: (False, None))
        """Cancels an answer of this instance: whether there was one, and its message id."""
        hub.on_control("cancel", self._cancel_requested)
        hub.on_control("cancelled", self._cancel_answered)

    # ------------------------------------------------------------ the port

    async def acquire(self, user_id: str, conversation_id: str) -> bool:
        """Take the conversation's lease; False while another instance holds it.

        While Redis is away the lease is granted here and kept, to be set in Redis
        by the next renewal once it is back."""
        key = _key(user_id, conversation_id)
        token = f"{self._instance}:{uuid.uuid4().hex[:12]}".encode()
        if not self._link.up.value:
            self._held[key] = token
            return True
        # Our own lease of the conversation, still on its way to be released, is
        # taken over rather than waited for.
        previous = next((t for k, t in self._releases if k == key), b"")
        if previous:
            self._releases = [(k, t) for k, t in self._releases if k != key]
        else:  # a release on its way compares tokens: it leaves ours alone
            previous = self._releasing.get(key, b"")
        try:
            with trio.fail_after(_CALL_TIMEOUT):
                taken = await self._client.eval(
                    _TAKE, keys=[key], args=[token, previous, self._lease_ms]
                )
        except _Errors as error:
            self._link.lost(error)
            self._held[key] = token
            return True
        if taken == 1:
            self._held[key] = token
        return taken == 1

    def release(self, user_id: str, conversation_id: str) -> None:
        """Let the lease go (soon, by the lease task); never blocks."""
        key = _key(user_id, conversation_id)
        token = self._held.pop(key, None)
        if token is not None:
            self._releases.append((key, token))
            self._release_wanted.set()

    async def cancel_elsewhere(self, user_id: str, conversation_id: str) -> tuple[bool, str | None]:
        """Cancel the answer another instance runs in the conversation: whether one was
        found, and its message id."""
        if not self._link.up.value:
            return False, None
        try:
            with trio.fail_after(_CALL_TIMEOUT):
                token = await self._client.get(_key(user_id, conversation_id))
        except _Errors as error:
            self._link.lost(error)
            return False, None
        owner = token.decode().rpartition(":")[0] if token else ""
        if not owner or owner == self._instance:
            return False, None
        request = uuid.uuid4().hex
        done = trio.Event()
        answer: list[Any] = []
        self._answers[request] = (done, answer)
        try:
            message = {
                "op": "cancel",
                "u": user_id,
                "c": conversation_id,
                "from": self._instance,
                "r": request,
            }
            if not await self._hub.send_control(owner, message):
                return False, None
            with trio.move_on_after(_CANCEL_WAIT):
                await done.wait()
        finally:
            del self._answers[request]
        if not answer:
            log.warning("instance %s did not answer a cancel within %.0f s", owner, _CANCEL_WAIT)
            return False, None
        found, message_id = answer
        return bool(found), message_id if isinstance(message_id, str) else None

    # ----------------------------------------------------------- control

    async def _cancel_requested(self, message: dict[str, Any]) -> None:
        found, message_id = self.cancel_here(str(message["u"]), str(message["c"]))
        await self._hub.send_control(
            str(message["from"]),
            {"op": "cancelled", "r": message["r"], "found": found, "m": message_id},
        )

    async def _cancel_answered(self, message: dict[str, Any]) -> None:
        waiting = self._answers.get(str(message.get("r")))
        if waiting is not None:
            done, answer = waiting
            answer[:] = [message.get("found"), message.get("m")]
            done.set()

    # -------------------------------------------------------------- tasks

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._renew)
            nursery.start_soon(self._release)

    async def _renew(self) -> None:
        while True:
            await trio.sleep(self._lease_ms / 3000)
            if not self._held or not self._link.up.value:
                continue
            keys, tokens = list(self._held), list(self._held.values())
            try:
                with trio.fail_after(_CALL_TIMEOUT):
                    await self._client.eval(_RENEW, keys=keys, args=[self._lease_ms, *tokens])
            except _Errors as error:
                self._link.lost(error)

    async def _release(self) -> None:
        while True:
            await self._release_wanted.wait()
            await self._link.up.wait_value(True)
            self._release_wanted = trio.Event()
            batch, self._releases = self._releases, []
            if not batch:
                continue  # taken over by ``acquire`` meanwhile
            self._releasing = dict(batch)
            try:
                with trio.fail_after(_CALL_TIMEOUT):
                    async with self._client.pipeline(transaction=False) as pipeline:
                        for key, token in batch:
                            pipeline.eval(_RELEASE, keys=[key], args=[token])
            except _Errors as error:
                self._link.lost(error)
                self._releases[:0] = batch  # again once Redis is back
                self._release_wanted.set()
            finally:
                self._releasing = {}
