"""What a real service answers a malformed request: route, version, key, deployment, body."""

from __future__ import annotations

import re
from collections.abc import Sequence
from urllib.parse import parse_qs

from .failures import azure_unauthorized, deployment_not_found, openai_error
from .records import RecordedRequest

__all__ = ["check_request"]

_API_VERSION = re.compile(r"\d{4}-\d{2}-\d{2}(-preview)?")


def check_request(
    record: RecordedRequest,
    headers: dict[str, str],
    query: str,
    raw: bytes,
    *,
    api_key: str,
    deployments: Sequence[str],
) -> tuple[int, object, dict[str, str]] | None:
    """The error answer a real service would give to a malformed request, if any."""
    if record.route == "other":
        return 404, {"error": {"code": "404", "message": "Resource not found"}}, {}
    if record.method != "POST":
        return 405, {"error": {"code": "405", "message": "Method not allowed"}}, {}
    if record.route == "azure":
        versions = parse_qs(query).get("api-version")
        if not versions:
            return 404, {"error": {"code": "404", "message": "Resource not found"}}, {}
        if not _API_VERSION.fullmatch(versions[0]):
            message = "API version not supported"
            return 400, {"error": {"code": "BadRequest", "message": message}}, {}
        if headers.get("api-key") != api_key:
            return 401, azure_unauthorized(), {}
        if record.deployment not in deployments:
            return 404, deployment_not_found(), {}
    else:
        if headers.get("authorization") != f"Bearer {api_key}":
            return 401, openai_error("Incorrect API key provided.", "invalid_api_key"), {}
        model = record.body.get("model") if isinstance(record.body, dict) else None
        if model not in deployments:
            message = f"The model `{model}` does not exist or you do not have access to it."
            return 404, openai_error(message, "model_not_found"), {}
    if not isinstance(record.body, dict) or not record.messages:
        message = "'messages' is a required property" if raw else "Invalid JSON body"
        return 400, {"error": {"code": "BadRequest", "message": message}}, {}
    if record.body.get("stream") is not True:
        message = "this fake answers only streamed requests (stream: true)"
        return 400, {"error": {"code": "BadRequest", "message": message}}, {}
    return None
