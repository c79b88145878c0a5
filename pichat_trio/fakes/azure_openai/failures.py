"""Injected failures, and the error bodies Azure and OpenAI answer with."""

from __future__ import annotations

import math

import msgspec

from .records import Behaviour, RecordedRequest
from .wire import FILTERED

__all__ = [
    "azure_unauthorized",
    "content_filter_error",
    "deployment_not_found",
    "failure_response",
    "openai_error",
]


def failure_response(
    behaviour: Behaviour, record: RecordedRequest, api_key: str
) -> tuple[int, object, dict[str, str]] | None:
    if behaviour.prompt_filter:
        return 400, content_filter_error(), {}
    status = behaviour.status
    if status is None:
        return None
    headers: dict[str, str] = {}
    if behaviour.retry_after is not None and status in (429, 503):
        headers["retry-after"] = str(math.ceil(behaviour.retry_after))
        headers["retry-after-ms"] = str(round(behaviour.retry_after * 1000))
    if status == 400:
        return 400, content_filter_error(), headers
    if status == 401:
        if record.route == "azure":
            return 401, azure_unauthorized(), headers
        return 401, openai_error("Incorrect API key provided.", "invalid_api_key"), headers
    if status == 429:
        seconds = math.ceil(behaviour.retry_after or 1)
        message = (
            "Requests to the ChatCompletions_Create Operation under Azure OpenAI API version "
            "2024-10-21 have exceeded token rate limit of your current OpenAI S0 pricing tier. "
            f"Please retry after {seconds} seconds."
        )
        return 429, {"error": {"code": "429", "message": message}}, headers
    messages = {
        500: ("InternalServerError", "The server had an error while processing your request."),
        502: ("BadGateway", "Bad gateway."),
        503: ("ServiceUnavailable", "The service is temporarily unable to process your request."),
        504: ("GatewayTimeout", "The operation was timeout."),
    }
    code, message = messages.get(status, (str(status), "Injected failure."))
    return status, {"error": {"code": code, "message": message}}, headers


def content_filter_error() -> object:
    return {
        "error": {
            "message": (
                "The response was filtered due to the prompt triggering Azure OpenAI's content "
                "management policy. Please modify your prompt and retry."
            ),
            "type": None,
            "param": "prompt",
            "code": "content_filter",
            "status": 400,
            "innererror": {
                "code": "ResponsibleAIPolicyViolation",
                "content_filter_result": msgspec.json.decode(FILTERED),
            },
        }
    }


def azure_unauthorized() -> object:
    message = (
        "Access denied due to invalid subscription key or wrong API endpoint. Make sure to "
        "provide a valid key for an active subscription and use a correct regional API "
        "endpoint for your resource."
    )
    return {"error": {"code": "401", "message": message}}


def deployment_not_found() -> object:
    message = (
        "The API deployment for this resource does not exist. If you created the deployment "
        "within the last 5 minutes, please wait a moment and try again."
    )
    return {"error": {"code": "DeploymentNotFound", "message": message}}


def openai_error(message: str, code: str) -> object:
    return {
        "error": {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    }
