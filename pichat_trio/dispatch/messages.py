"""Handlers of ``send_message`` and ``cancel_generation``, and the answer's task.

``send_message`` reserves the conversation, starts the answer's task in
the requester's connection (it counts toward the connection's cap), then
queues the store and waits for it: this connection's next frame waits for
the store, so replies keep their order and a read after a send sees the
message. The task waits for the same store, queues ``message_sent`` with
``typing_indicator`` (one write) and streams the answer.
"""

from __future__ import annotations

from ..errors import UpstreamUnavailable
from ..protocol.encode import typing_text
from ..protocol.schemas import CancelGeneration, SendMessage
from ..services.chat import ChatService, Generation
from .call import Call, Services

__all__ = ["cancel_generation", "send_message"]


async def send_message(services: Services, call: Call, p: SendMessage) -> None:
    call.peer.check_capacity()  # before anything is stored
    audio_file = None
    if p.audio_data is not None:
        audio_file = await _store_audio(services, call, p.audio_data)
    chat = services.chat
    generation = await chat.reserve(
        call.user,
        call.origin,
        str(p.conversation_id),
        p.content,
        is_audio=p.is_audio or audio_file is not None,
        audio_file=audio_file,
    )
    try:
        call.peer.spawn(_answer, chat, call, generation)
    except BaseException:
        chat.abandon(generation)  # nothing was stored: the conversation is free again
        raise
    await chat.store(generation)  # a failed store is raised here, for this request's reply


async def _answer(chat: ChatService, call: Call, generation: Generation) -> None:
    question = await chat.stored(generation)
    if question is None:
        return  # the store failed: send_message's own reply says so
    # Before generate(): ahead of any reply to the connection's next frame.
    call.reply_with("message_sent", question, typing_text(generation.conversation_id, True))
    await chat.generate(generation)


async def _store_audio(services: Services, call: Call, audio_data: str) -> str:
    store = services.audio_store
    speech = services.speech
    if store is None or speech is None:
        raise UpstreamUnavailable("audio messages need speech support on this server")
    return await store.save(call.user.id, speech.decode_wav(audio_data))


async def cancel_generation(services: Services, call: Call, p: CancelGeneration) -> None:
    conversation_id = str(p.conversation_id)
    message_id = await services.chat.cancel(call.user, conversation_id)
    call.reply(
        "generation_cancelled", {"conversation_id": conversation_id, "message_id": message_id}
    )
