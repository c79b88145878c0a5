"""``pichat fake-azure``: the fake on a port, until interrupted."""

from __future__ import annotations

import argparse
import logging

import trio

from .records import Behaviour
from .server import FakeAzureOpenAI

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fake-azure",
        description=(
            "A fake Azure OpenAI chat-completions server that streams deterministic answers "
            "(' word1 word2 ...') in Azure's exact SSE format. Point PiChat at it with the "
            "endpoint and key it prints. Put markers such as [fake:429], [fake:drop:5] or "
            "[fake:tokens:200] in a message to choose a behaviour per request; see "
            "pichat_trio/fakes/azure_openai/__init__.py for the list."
        ),
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (%(default)s)")
    parser.add_argument(
        "--port", type=int, default=8089, help="port; 0 picks a free one (%(default)s)"
    )
    parser.add_argument("--tokens", type=int, default=20, help="tokens per answer (%(default)s)")
    parser.add_argument(
        "--rate", type=float, default=30.0, help="tokens per second, 0 = no pacing (%(default)s)"
    )
    parser.add_argument(
        "--api-key", default="fake-key", help="the key clients must send (%(default)s)"
    )
    parser.add_argument(
        "--deployments",
        default="gpt-4,gpt-35-turbo",
        help="comma-separated deployment names, also the OpenAI model ids (%(default)s)",
    )
    parser.add_argument(
        "--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the fake until interrupted; returns the process exit status."""
    args = _parser().parse_args(argv)
    deployments = [name.strip() for name in args.deployments.split(",") if name.strip()]
    if not deployments or args.tokens < 0 or args.rate < 0:
        _parser().error("need at least one deployment, and tokens and rate not negative")
    logging.basicConfig(level=args.log_level)
    fake = FakeAzureOpenAI(
        api_key=args.api_key,
        deployments=deployments,
        behaviour=Behaviour(tokens=args.tokens, rate=args.rate),
    )

    async def run() -> None:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(fake.serve, args.host, args.port)
            url = f"http://{args.host}:{port}"
            print(f"fake Azure OpenAI listening on {url}", flush=True)
            print(f"  endpoint:    {url}", flush=True)
            print(f"  api key:     {args.api_key}", flush=True)
            print(f"  deployments: {', '.join(deployments)}", flush=True)
            print(f"  OpenAI-compatible base URL: {url}/v1", flush=True)

    try:
        trio.run(run)
    except KeyboardInterrupt:
        return 0
    return 0
