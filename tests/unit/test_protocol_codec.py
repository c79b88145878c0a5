"""The protocol core without sockets: decode a frame, validate a payload, encode replies."""

from __future__ import annotations

import msgspec
import pytest

from pichat_trio.limits import Limits
from pichat_trio.protocol.envelope import decode_payload, decode_request
from pichat_trio.protocol.errors import ProtocolError, error_frame
from pichat_trio.protocol.schemas import Schemas
from pichat_trio.protocol.wire import Frame, TokenFrame, encode_event, frame_for

SCHEMAS = Schemas(Limits(max_title_chars=10))


def _refusal(text: str) -> tuple[str, str]:
    with pytest.raises(ProtocolError) as caught:
        decode_request(text)
    return caught.value.code, caught.value.message


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        ("{", "invalid_json", "the frame is not valid JSON"),
        ("[]", "invalid_json", "expected a JSON object"),
        ("42", "invalid_json", "expected a JSON object"),
        ("{}", "invalid_request", "action: required"),
        ('{"action": null}', "invalid_request", "action: expected `str`, got `null`"),
        (
            '{"action": "ping", "request_id": ""}'.replace('""', '"' + "r" * 65 + '"'),
            "invalid_request",
            "request_id: expected a string of at most 64 characters",
        ),
    ],
)
def test_refusals_carry_their_code_and_field(text, code, message):
    assert _refusal(text) == (code, message)


def test_a_request_keeps_its_id_and_raw_payload():
    request = decode_request(
        '{"action": "get_conversation", "payload": {"id": 1}, "request_id": "r"}'
    )
    assert request.action == "get_conversation" and request.request_id == "r"
    with pytest.raises(ProtocolError) as caught:
        decode_payload(request, SCHEMAS.id_payload)
    assert caught.value.code == "invalid_request"
    assert caught.value.message == "payload.id: expected `uuid`, got `int`"
    assert caught.value.request_id == "r"


def test_limits_come_from_configuration():
    request = decode_request(
        '{"action": "create_conversation", "payload": {"title": "x" * 11}}'.replace(
            '"x" * 11', '"' + "x" * 11 + '"'
        )
    )
    with pytest.raises(ProtocolError) as caught:
        decode_payload(request, SCHEMAS.create_conversation)
    assert caught.value.message == "payload.title: expected `str` of length <= 10"


def test_missing_or_null_payload_is_an_empty_object():
    for text in (
        '{"action": "create_conversation"}',
        '{"action": "create_conversation", "payload": null}',
    ):
        assert decode_payload(decode_request(text), SCHEMAS.create_conversation).title is None


def test_nested_fields_are_named_with_their_path():
    request = decode_request(
        '{"action": "update_settings", "payload": {"voice_settings": {"speed": 9}}}'
    )
    with pytest.raises(ProtocolError) as caught:
        decode_payload(request, SCHEMAS.update_settings)
    assert caught.value.message == "payload.voice_settings.speed: expected `float` <= 2.0"


def test_encoded_frames():
    assert msgspec.json.decode(encode_event("pong", {}, "r-1")) == {
        "action": "pong",
        "payload": {},
        "request_id": "r-1",
    }
    assert msgspec.json.decode(error_frame("busy", "wait", "send_message", None)) == {
        "action": "error",
        "payload": {"code": "busy", "message": "wait", "request_action": "send_message"},
    }


def test_token_frames_merge_into_one_valid_frame():
    prefix = TokenFrame.prefix_for("c-1", "m-1")
    first, second = TokenFrame(prefix, "m-1", 'He said "hi'), TokenFrame(prefix, "m-1", '"\n')
    merged = first.merged(second)
    assert msgspec.json.decode(merged.text) == {
        "action": "message_stream",
        "payload": {
            "conversation_id": "c-1",
            "message_id": "m-1",
            "finished": False,
            "token": 'He said "hi"\n',
        },
    }


def test_frames_address_the_origin_and_survive_the_wire():
    frame = Frame("all", origin="conn-a", origin_text="mine")
    assert frame.text_for("conn-a") == "mine" and frame.text_for("conn-b") == "all"
    assert Frame(None, "conn-a", "only").text_for("conn-b") is None
    again = frame_for(frame.to_wire())
    assert isinstance(again, Frame) and again.text_for("conn-a") == "mine"
    token = frame_for(TokenFrame("p", "m", "t").to_wire())
    assert isinstance(token, TokenFrame) and token.token == "t"


def test_frames_written_together_survive_the_wire():
    frame = Frame(("new", "typing"), origin="conn-a", origin_text=("sent", "typing"))
    again = frame_for(frame.to_wire())
    assert isinstance(again, Frame)
    assert again.text_for("conn-a") == ("sent", "typing")
    assert again.text_for("conn-b") == ("new", "typing")
