"""A fake Azure OpenAI chat-completions server, for tests, benchmarks and demos.

It speaks Azure's wire format over real sockets (trio + h11, no framework,
so hundreds of concurrent streams fit on one core) and records what it saw.

Routes:

- ``POST /openai/deployments/{deployment}/chat/completions?api-version=V``
  with ``api-key: KEY``. A missing ``api-version`` or an unknown path is 404,
  a malformed version 400, a wrong key 401 and an unknown deployment 404,
  each with Azure's error JSON.
- ``POST /v1/chat/completions`` (or ``/chat/completions``), OpenAI-compatible,
  with ``Authorization: Bearer KEY``; ``model`` must be a known deployment.

The stream, like Azure's: a first event with ``"choices": []`` and
``prompt_filter_results`` (Azure route only), a ``: keep-alive`` comment, a
role-only delta, one event per token with ``content_filter_results``, a last
chunk with an empty delta and the finish reason, then ``data: [DONE]``. Lines
end in CRLF; the body is chunked. A request's ``max_tokens`` below the answer
length cuts it with ``length``. Tokens are `` word1``, `` word2``, ... unless
``words`` is given.

Behaviour comes from ``FakeAzureOpenAI.behaviour``, from failures queued with
``fail_next``, and per request from markers in the last user message (for
end-to-end tests and benchmarks that cannot reach the object):

==========================  ====================================================
``[fake:tokens:N]``         answer with N tokens
``[fake:rate:R]``           R tokens per second (0: as fast as possible)
``[fake:length]``           end with finish reason ``length``
``[fake:filter]``           HTTP 400, Azure's content-filter error
``[fake:filter:K]``         finish reason ``content_filter`` after K tokens
``[fake:drop:K]``           close the connection after K tokens, without [DONE]
``[fake:stall:K]``          send nothing more after K tokens; keep the socket open
``[fake:truncate:K]``       end the body cleanly after K tokens, without [DONE]
``[fake:NNN]``              answer HTTP NNN (429, 500, 502, 503, 504, 401, ...)
``[fake:NNN:N]``            the same, for the first N requests with this message
``[fake:retry-after:S]``    Retry-After of an error answer, seconds (default 1)
==========================  ====================================================

Run it with ``python -m pichat_trio.fakes.azure_openai --help``.

The modules, one concern each:

- ``server``: ``FakeAzureOpenAI``, the knobs, the record and the serving loop;
- ``http``: the HTTP/1.1 plumbing over h11 (a request read, a plain answer,
  a client's hang-up noticed);
- ``wire``: the chat-completions event stream, byte for byte;
- ``checks``: the answers a real service gives a malformed request (route,
  version, key, deployment);
- ``failures``: injected failures and Azure's and OpenAI's error bodies;
- ``markers``: the per-request markers above;
- ``records``: ``Behaviour`` and ``RecordedRequest``;
- ``cli``: ``main``, ``pichat fake-azure``.
"""

from __future__ import annotations

from .cli import main
from .records import Behaviour, RecordedRequest
from .server import FakeAzureOpenAI
from .wire import stream_head, stream_headers

__all__ = [
    "Behaviour",
    "FakeAzureOpenAI",
    "RecordedRequest",
    "main",
    "stream_head",
    "stream_headers",
]
