"""The ``pichat`` command: serve, migrate, manage users, run the fake Azure OpenAI."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from functools import partial
from typing import Any, NoReturn

import trio

from . import __version__
from .clients.commands import add_client_commands, run_client
from .settings import VARIABLES, Settings, SettingsError, load_settings

__all__ = ["main"]


def _epilog() -> str:
    lines = ["configuration (environment variables, or a .env file in the working directory):"]
    lines += [f"  {v.name:<32} {v.help} (default: {v.default or 'empty'})" for v in VARIABLES]
    return "\n".join(lines)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pichat",
        description="PiChat server: a personal AI assistant over WebSocket.",
        epilog=_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"pichat {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the server (hypercorn, trio worker)")
    serve.add_argument("--host", help="address to bind (default: SERVER_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (default: SERVER_PORT, 8080)")
    serve.add_argument(
        "--certfile", help="PEM certificate: serve https/wss (default: TLS_CERTFILE)"
    )
    serve.add_argument("--keyfile", help="PEM private key of --certfile (default: TLS_KEYFILE)")
    commands.add_parser("migrate", help="create or upgrade the database schema (Alembic)")
    users = commands.add_parser("users", help="manage users and their tokens")
    user_commands = users.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    add = user_commands.add_parser(
        "add", help="create users in one transaction; prints 'NAME TOKEN' per user, once"
    )
    add.add_argument("names", nargs="+", metavar="NAME")
    user_commands.add_parser("list", help="list active users")
    revoke = user_commands.add_parser("revoke", help="revoke a user's token")
    revoke.add_argument("name", metavar="NAME")
    fake = commands.add_parser(
        "fake-azure", help="run a local fake Azure OpenAI (tests, benchmarks)", add_help=False
    )
    fake.add_argument("fake_args", nargs=argparse.REMAINDER)
    add_client_commands(commands)
    return parser


def _settings(**overrides: Any) -> Settings:
    try:
        return load_settings(**overrides)
    except SettingsError as error:
        _configuration_error(error)


def _configuration_error(error: BaseException) -> NoReturn:
    """A start-up failure the configuration caused: one line on stderr, exit code 2."""
    line = " ".join(str(error).split())
    print(f"pichat: configuration error: {line}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def _tls_from_flags(settings: Settings, args: argparse.Namespace) -> Settings:
    """``--certfile``/``--keyfile`` over ``TLS_CERTFILE``/``TLS_KEYFILE``, by the same rules."""
    from dataclasses import replace

    from .settings import check_tls

    certfile = getattr(args, "certfile", None) or settings.tls_certfile
    keyfile = getattr(args, "keyfile", None) or settings.tls_keyfile
    try:
        checked = check_tls(certfile, keyfile)
    except SettingsError as error:
        print(f"pichat: configuration error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    return replace(
        settings, tls_certfile=checked["tls_certfile"], tls_keyfile=checked["tls_keyfile"]
    )


def _serve(settings: Settings) -> int:
    from .gc_tuning import tune_for_serving
    from .logs import configure_logging
    from .server import serve, wait_for_signal

    # The database first, before anything is logged: a database that cannot be used
    # is the one line of a configuration error. The server's own migration at
    # start-up then finds the schema at its head.
    _migrated_engine(settings, 1).dispose()
    secrets = [
        settings.api_token,
        settings.azure_openai_key,
        settings.openai_api_key,
        settings.azure_speech_key,
        settings.metrics_token,
        settings.applicationinsights_connection_string,
    ]
    configure_logging(settings.log_level, secrets, settings.log_format)
    if settings.api_token_generated:
        print(
            "pichat: no API_TOKEN set; generated one for this run (development only):\n"
            f"  {settings.api_token}\n"
            "Set API_TOKEN in the environment or .env to keep it across restarts. "
            f"Connect to ws://{settings.host}:{settings.port}/ws?token=<that token>\n"
            f"Open the page: http://{settings.host}:{settings.port}/#token={settings.api_token}",
            file=sys.stderr,
            flush=True,
        )
    failures: list[BaseException] = []
    configuration: list[BaseException] = []
    try:
        trio.run(
            partial(
                serve,
                settings,
                shutdown_trigger=wait_for_signal,
                on_app=lambda _: tune_for_serving(),
            )
        )
    except* SettingsError as group:  # the database cannot be used, its driver is missing, ...
        configuration.extend(group.exceptions)
    except* OSError as group:  # the port is taken, the address is not ours, ...
        failures.extend(group.exceptions)
    if configuration:
        _configuration_error(_innermost(configuration[0]))
    if failures:
        logging.getLogger("pichat").error("cannot serve: %s", _innermost(failures[0]))
        return 1
    return 0


def _innermost(failure: BaseException) -> BaseException:
    while isinstance(failure, BaseExceptionGroup):  # nurseries nest their errors
        failure = failure.exceptions[0]
    return failure


def _migrated_engine(settings: Settings, pool_size: int) -> Any:
    """The settings' engine with the schema at head; a database that cannot be used is
    a configuration error (one line, exit 2)."""
    import sqlalchemy as sa

    from .adapters.sql.engine import engine_for, startup_error
    from .adapters.sql.migrate import upgrade
    from .errors import PichatError

    try:
        engine = engine_for(settings, pool_size)
    except SettingsError as error:
        _configuration_error(error)
    try:
        upgrade(engine)
    except (sa.exc.SQLAlchemyError, PichatError, OSError) as error:
        _configuration_error(startup_error(error, settings.database_setting))
    return engine


def _repository(settings: Settings):  # type: ignore[no-untyped-def]
    from .adapters.sql.repository import SqlRepository
    from .app import _default_settings

    return SqlRepository(_migrated_engine(settings, 2), _default_settings(settings))


def _users(settings: Settings, args: argparse.Namespace) -> int:
    repository = _repository(settings)
    try:
        if args.users_command == "add":
            names = list(dict.fromkeys(args.names))
            bad = [n for n in names if not n.strip() or len(n) > 100 or n != n.strip()]
            if bad:
                print(f"pichat: invalid user name {bad[0]!r}", file=sys.stderr)
                return 2
            try:
                created = repository.add_users(names)
            except ValueError as error:
                print(f"pichat: {error}", file=sys.stderr)
                return 1
            sys.stdout.write("".join(f"{user.name} {token}\n" for user, token in created))
        elif args.users_command == "list":
            for user in repository.list_users():
                print(user.name)
        elif args.users_command == "revoke":
            if not repository.revoke_user(args.name):
                print(f"pichat: no active user {args.name!r}", file=sys.stderr)
                return 1
            print(f"revoked {args.name}")
    finally:
        repository.engine.dispose()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["fake-azure"]:  # its own parser, ``--help`` included
        from .fakes.azure_openai import main as fake_main

        return fake_main(argv[1:])
    args = _parser().parse_args(argv)
    if args.command in ("chat", "voice"):
        return run_client(args)
    if args.command in (None, "serve"):
        overrides: dict[str, object] = {}
        if getattr(args, "host", None):
            overrides["host"] = args.host
        if getattr(args, "port", None) is not None:
            overrides["port"] = args.port
        return _serve(_tls_from_flags(_settings(**overrides), args))
    settings = _settings()
    if args.command == "migrate":
        from .adapters.sql.migrate import current_revision

        engine = _migrated_engine(settings, 1)
        print(f"database at revision {current_revision(engine)}")
        engine.dispose()
        return 0
    return _users(settings, args)


if __name__ == "__main__":
    raise SystemExit(main())
