"""The hub across server instances: each user's events on a Redis channel of their own.

``publish`` hands the event to this instance's connections of the user at
once (the requester's own connection never waits on Redis), then queues it
for the other instances. Every ``batch_seconds`` one task publishes, in one
pipelined round trip, one message per user with everything queued for that
user (the tokens of one answer merged into one event), each event in its
wire form (``domain/wire.py``), so Redis traffic follows the number of
users streaming, not the token rate. An event for the requester alone
(``RequestFailed``) stays here.

An instance subscribes to the channel of each user it has a connection of,
and only to those: it receives only its own users' traffic. Its own
messages come back to it (it is subscribed too) and are skipped by the
instance id they carry. The instance's own channel carries control
messages (``control``), such as a cancel for an answer this instance runs.

When Redis is lost, local delivery goes on, cross-instance events are
dropped and counted, and the listener reconnects with backoff and
subscribes again.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import coredis
import msgspec
import trio
from coredis.retry import NoRetryPolicy
from trio_util import AsyncValue

from ...domain.events import DomainEvent, RequestFailed, TokenAdded
from ...domain.wire import event_from_wire, event_to_wire
from ...ports import Subscriber
from ..hub.local import LocalHub
from .link import Link

__all__ = ["RedisHub", "user_channel"]

log = logging.getLogger(__name__)

_USER = "pichat:user:"
_INSTANCE = "pichat:instance:"
_FIRST_DELAY = 0.1  # seconds before the first reconnection; doubles up to _LAST_DELAY
_LAST_DELAY = 5.0
_SUBSCRIBE_WAIT = 2.0  # a new connection waits at most this for its channel
_PUBLISH_TIMEOUT = 5.0

ControlHandler = Callable[[dict[str, Any]], Awaitable[None]]


def user_channel(user_id: str) -> str:
    return _USER + user_id


class _Batch(msgspec.Struct, frozen=True):
    i: str  # the instance that published it
    e: list[msgspec.Raw]  # events, each as ``event_to_wire`` wrote it


_decode_batch = msgspec.json.Decoder(_Batch).decode
_decode_control = msgspec.json.Decoder(dict[str, Any]).decode
_encode = msgspec.json.Encoder().encode


class RedisHub:
    def __init__(
        self, client: coredis.Redis[bytes], link: Link, instance_id: str, batch_seconds: float
    ) -> None:
        self.instance_id = instance_id
        self._client = client
        self._link = link
        self._batch_seconds = batch_seconds
        self._local = LocalHub()
        self._head = b'{"i":' + _encode(instance_id) + b',"e":['
        self._pending: dict[str, list[DomainEvent]] = {}
        self._flush_wanted = trio.Event()
        self._channels_changed = trio.Event()
        self._acked: frozenset[str] = frozenset()
        self._acks = AsyncValue(0)  # bumped whenever ``_acked`` changes
        self._control: dict[str, ControlHandler] = {}

    # ------------------------------------------------------------ the port

    async def publish(self, user_id: str, event: DomainEvent) -> None:
        self._local.deliver_local(user_id, event)
        if isinstance(event, RequestFailed):
            return  # for the requester alone, who is here
        if not self._link.up.value:
            self._link.dropped.inc()
            return
        pending = self._pending.get(user_id)
        if pending is None:
            self._pending[user_id] = [event]
            self._flush_wanted.set()
        elif (
            isinstance(event, TokenAdded)
            and isinstance(last := pending[-1], TokenAdded)
            and last.message_id == event.message_id
        ):
            pending[-1] = msgspec.structs.replace(last, token=last.token + event.token)
        else:
            pending.append(event)

    def subscribe(self, user_id: str, subscriber: Subscriber) -> _Subscription:
        return _Subscription(self, user_id, subscriber)

    def connection_count(self, user_id: str | None = None) -> int:
        return self._local.connection_count(user_id)

    # ---------------------------------------------------------- control

    def on_control(self, op: str, handler: ControlHandler) -> None:
        """``handler`` gets the control messages ``{"op": op, ...}`` sent to this instance."""
        self._control[op] = handler

    async def send_control(self, instance_id: str, message: dict[str, Any]) -> bool:
        """Publish ``message`` to one instance; False when Redis cannot be reached."""
        try:
            with trio.fail_after(_PUBLISH_TIMEOUT):
                await self._client.publish(_INSTANCE + instance_id, _encode(message))
        except (coredis.exceptions.RedisError, OSError, trio.TooSlowError) as error:
            self._link.lost(error)
            return False
        return True

    # ------------------------------------------------------------- tasks

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Listen and publish until cancelled; started once the first attempt is made."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._flush)
            await nursery.start(self._listen)
            task_status.started()

    async def _listen(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        delay = _FIRST_DELAY
        started = False
        while True:
            try:
                async with self._client.pubsub(
                    retry_policy=NoRetryPolicy(),
                    ignore_subscribe_messages=True,
                    channels=[_INSTANCE + self.instance_id],
                ) as pubsub:
                    delay = _FIRST_DELAY
                    async with trio.open_nursery() as session:
                        session.start_soon(self._follow_users, pubsub)
                        session.start_soon(self._end_when_down, session.cancel_scope)
                        if not started:
                            started = True
                            task_status.started()
                        async for message in pubsub:
                            await self._received(message)
            except Exception as error:  # connection errors come grouped by coredis' task groups
                self._link.lost(error)
            else:
                self._link.lost(ConnectionError("the subscription ended"))
            finally:
                self._set_acked(frozenset())
            if not started:
                started = True
                task_status.started()
            await trio.sleep(delay)
            delay = min(delay * 2, _LAST_DELAY)

    async def _end_when_down(self, scope: trio.CancelScope) -> None:
        """A failed publish also ends the subscription, to be made again from scratch."""
        await self._link.up.wait_value(True)
        await self._link.up.wait_value(False)
        scope.cancel()

    async def _follow_users(self, pubsub: Any) -> None:
        """Keep the subscriptions to the channels of the users connected here; the link
        is up once the first round is made (a reconnection has subscribed again)."""
        current: frozenset[str] = frozenset()
        while True:
            self._channels_changed = trio.Event()
            wanted = frozenset(map(user_channel, self._local.users()))
            if added := wanted - current:
                await pubsub.subscribe(*added)
            if removed := current - wanted:
                await pubsub.unsubscribe(*removed)
            current = wanted
            self._set_acked(current)
            self._link.restored()
            await self._channels_changed.wait()

    def _set_acked(self, channels: frozenset[str]) -> None:
        self._acked = channels
        self._acks.value += 1

    async def _received(self, message: Any) -> None:
        channel = message["channel"]
        channel = channel.decode() if isinstance(channel, bytes) else str(channel)
        data = message["data"]
        try:
            if channel.startswith(_USER):
                batch = _decode_batch(data)
                if batch.i == self.instance_id:
                    return  # our own, delivered here already
                self._link.received.inc()
                user_id = channel[len(_USER) :]
                for wire in batch.e:
                    self._local.deliver_local(user_id, event_from_wire(bytes(wire)))
            else:
                control = _decode_control(data)
                handler = self._control.get(str(control.get("op")))
                if handler is not None:
                    await handler(control)
        except (msgspec.DecodeError, ValueError, TypeError, KeyError):
            log.warning("backplane: an unreadable message on %s was skipped", channel)

    async def _flush(self) -> None:
        while True:
            await self._flush_wanted.wait()
            await trio.sleep(self._batch_seconds)
            self._flush_wanted = trio.Event()
            batch, self._pending = self._pending, {}
            if not self._link.up.value:
                self._link.dropped.inc(sum(map(len, batch.values())))
                continue
            try:
                with trio.fail_after(_PUBLISH_TIMEOUT):
                    async with self._client.pipeline(transaction=False) as pipeline:
                        for user_id, events in batch.items():
                            wire = b",".join(map(event_to_wire, events))
                            pipeline.publish(user_channel(user_id), self._head + wire + b"]}")
            except (coredis.exceptions.RedisError, OSError, trio.TooSlowError) as error:
                self._link.lost(error)
                continue
            self._link.published.inc(len(batch))
            self._link.published_events.inc(sum(map(len, batch.values())))

    async def until_subscribed(self, user_id: str) -> None:
        """Until Redis has confirmed the user's channel (bounded; at once while it is down)."""
        channel = user_channel(user_id)
        with trio.move_on_after(_SUBSCRIBE_WAIT):
            await self._acks.wait_value(lambda _: channel in self._acked or not self._link.up.value)

    def _users_changed(self) -> None:
        self._channels_changed.set()


class _Subscription:
    __slots__ = ("_hub", "_local", "_user_id")

    def __init__(self, hub: RedisHub, user_id: str, subscriber: Subscriber) -> None:
        self._hub = hub
        self._user_id = user_id
        self._local = hub._local.subscribe(user_id, subscriber)

    async def __aenter__(self) -> None:
        first = not self._hub.connection_count(self._user_id)
        await self._local.__aenter__()
        if first:
            self._hub._users_changed()
            try:
                await self._hub.until_subscribed(self._user_id)
            except BaseException as exc:
                await self.__aexit__(type(exc), exc, exc.__traceback__)
                raise

    async def __aexit__(self, *exc_info: Any) -> None:
        await self._local.__aexit__(*exc_info)
        if not self._hub.connection_count(self._user_id):
            self._hub._users_changed()
