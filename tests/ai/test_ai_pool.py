"""The upstream transport over real sockets: keep-alive, stale connections, limits, TLS.

Each test runs a small HTTP/1.1 server on 127.0.0.1 that writes exactly the
bytes the test names, so the transport meets the awkward cases a real
server produces (closing an idle keep-alive connection, stalling mid-body,
breaking the framing) on purpose.
"""

from __future__ import annotations

import contextlib
import gzip
import socket
import ssl
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import partial

import httpx
import pytest
import trio
import trustme
from trio.testing import MockClock

from pichat_trio.adapters.ai.http_chat import open_http_client
from pichat_trio.adapters.ai.pool import KeepAliveTransport, body_chunks, open_pool

OK_CHUNKED = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
OK_LENGTH = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"

Handler = Callable[[trio.SocketStream, "Server"], Awaitable[None]]


@dataclass
class Server:
    port: int = 0
    accepted: int = 0
    requests: list[bytes] = field(default_factory=list)
    closed: trio.Event = field(default_factory=trio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1/chat"

    async def read_request(self, stream: trio.abc.Stream) -> bytes:
        """One request (head and Content-Length body); b"" if the client closed."""
        data = b""
        while b"\r\n\r\n" not in data:
            more = await stream.receive_some(65536)
            if not more:
                return b""
            data += more
        head, _, body = data.partition(b"\r\n\r\n")
        length = next(
            (
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            ),
            0,
        )
        while len(body) < length:
            body += await stream.receive_some(65536)
        self.requests.append(head + b"\r\n\r\n" + body)
        return head


async def start_server(nursery: trio.Nursery, handler: Handler) -> Server:
    server = Server()

    async def serve_one(stream: trio.SocketStream) -> None:
        server.accepted += 1
        async with stream:
            await handler(stream, server)

    listeners = await nursery.start(partial(trio.serve_tcp, serve_one, 0, host="127.0.0.1"))
    server.port = listeners[0].socket.getsockname()[1]
    return server


async def keep_alive(stream: trio.SocketStream, server: Server) -> None:
    while await server.read_request(stream):
        await stream.send_all(OK_CHUNKED)


async def test_one_connection_carries_sequential_requests(nursery: trio.Nursery) -> None:
    server = await start_server(nursery, keep_alive)
    async with open_http_client() as client:
        for _ in range(3):
            response = await client.post(server.url, content=b'{"a": 1}')
            assert (response.status_code, response.content) == (200, b"hello")
    assert server.accepted == 1
    assert len(server.requests) == 3
    assert server.requests[0].startswith(b"POST /v1/chat HTTP/1.1\r\n")
    assert server.requests[0].endswith(b'\r\n\r\n{"a": 1}')
    assert b"\r\ncontent-length: 8\r\n" in server.requests[0].lower()


def _tasks_named(name: str) -> list[trio.lowlevel.Task]:
    """Every task of this trio run called ``name``, system tasks included."""
    found: list[trio.lowlevel.Task] = []
    tasks = [trio.lowlevel.current_root_task()]
    while tasks:
        task = tasks.pop()
        found += [task] if task.name == name else []
        tasks += [child for nursery in task.child_nurseries for child in nursery.child_tasks]
    return found


async def test_the_read_timeout_task_lives_in_the_pool_and_ends_with_it(
    nursery: trio.Nursery,
) -> None:
    server = await start_server(nursery, keep_alive)
    name = "pichat.ai-read-deadlines"
    async with open_pool() as pool:
        response = await pool.post(httpx.URL(server.url), {}, b"{}", {"read": 5.0})
        assert await response.aread() == b"hello"
        [task] = _tasks_named(name)
        assert task.parent_nursery is not None
        assert task.parent_nursery.parent_task is trio.lowlevel.current_task()
        assert task.eventual_parent_nursery is None
    assert _tasks_named(name) == []  # ended with the pool, not with the run


async def test_an_error_in_the_pools_block_comes_out_as_raised() -> None:
    error = LookupError("the caller's own")
    with pytest.raises(LookupError) as raised:
        async with open_pool():
            raise error
    assert raised.value is error  # not inside the pool's nursery's exception group


async def test_post_writes_the_request_httpx_would(nursery: trio.Nursery) -> None:
    """``post`` (the models' path, without an ``httpx.Request``) and the client's path put
    the same request on the wire, and share the kept connection."""
    server = await start_server(nursery, keep_alive)
    url = f"http://127.0.0.1:{server.port}/openai/deployments/d/chat?api-version=1"
    headers = {"api-key": "k", "content-type": "application/json"}
    body = b'{"messages": []}'
    pool = KeepAliveTransport(nursery)
    try:
        request = httpx.Request("POST", url, headers=headers, content=body)
        through_httpx = await pool.handle_async_request(request)
        await through_httpx.aread()
        direct = await pool.post(httpx.URL(url), headers, body, {})
        assert direct.status_code == 200 and await direct.aread() == b"hello"
    finally:
        await pool.aclose()
    assert server.accepted == 1
    first, second = server.requests
    assert second == first
    assert first.startswith(
        b"POST /openai/deployments/d/chat?api-version=1 HTTP/1.1\r\n"
        b"Host: 127.0.0.1:%d\r\n" % server.port
    )
    assert first.endswith(b"Content-Length: 16\r\n\r\n" + body)


async def test_an_idle_connection_the_server_closed_is_replaced(nursery: trio.Nursery) -> None:
    async def one_request_then_close(stream: trio.SocketStream, server: Server) -> None:
        await server.read_request(stream)
        await stream.send_all(OK_LENGTH)

    server = await start_server(nursery, one_request_then_close)
    async with open_http_client() as client:
        for _ in range(3):
            await trio.sleep(0.05)  # the server's close arrives while the connection is idle
            response = await client.post(server.url, content=b"{}")
            assert response.content == b"hello"
    assert server.accepted == 3


async def test_a_kept_connection_that_fails_before_any_answer_is_retried_once(
    nursery: trio.Nursery,
) -> None:
    """The server reads the second request, then closes without a byte: a race to absorb."""

    async def close_on_second(stream: trio.SocketStream, server: Server) -> None:
        await server.read_request(stream)
        await stream.send_all(OK_LENGTH)
        await server.read_request(stream)

    server = await start_server(nursery, close_on_second)
    async with open_http_client() as client:
        assert (await client.post(server.url, content=b"{}")).content == b"hello"
        assert (await client.post(server.url, content=b"{}")).content == b"hello"
    assert server.accepted == 2
    assert len(server.requests) == 3


async def test_a_new_connection_closed_without_an_answer_fails(nursery: trio.Nursery) -> None:
    async def close_at_once(stream: trio.SocketStream, server: Server) -> None:
        await server.read_request(stream)

    server = await start_server(nursery, close_at_once)
    async with open_http_client() as client:
        with pytest.raises(httpx.RemoteProtocolError, match="no response"):
            await client.post(server.url, content=b"{}")
    assert server.accepted == 1


async def test_a_stalled_body_fails_at_the_read_timeout(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    async def stall(stream: trio.SocketStream, server: Server) -> None:
        await server.read_request(stream)
        await stream.send_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel")
        await trio.sleep_forever()

    server = await start_server(nursery, stall)
    timeout = httpx.Timeout(5.0, read=7.0)
    async with (
        open_http_client(timeout=timeout) as client,
        client.stream("POST", server.url, content=b"{}") as response,
    ):
        start = trio.current_time()
        with pytest.raises(httpx.ReadTimeout):
            async for _ in response.aiter_bytes():
                pass
    assert trio.current_time() - start == pytest.approx(7.0)


async def test_a_full_pool_fails_at_the_pool_timeout(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    server = await start_server(nursery, keep_alive)
    transport = KeepAliveTransport(nursery, max_connections=1)
    async with httpx.AsyncClient(
        transport=transport, timeout=httpx.Timeout(5.0, pool=3.0)
    ) as client:
        async with client.stream("POST", server.url, content=b"{}"):
            start = trio.current_time()
            with pytest.raises(httpx.PoolTimeout):
                await client.post(server.url, content=b"{}")
            assert trio.current_time() - start == pytest.approx(3.0)
        # the slot is back once the first response is closed
        assert (await client.post(server.url, content=b"{}")).content == b"hello"


async def test_a_connection_the_server_means_to_close_is_not_kept(nursery: trio.Nursery) -> None:
    """ "Connection: close" with the socket still open: the next request must not use it."""

    async def close_announced(stream: trio.SocketStream, server: Server) -> None:
        while await server.read_request(stream):
            await stream.send_all(
                b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello"
            )

    server = await start_server(nursery, close_announced)
    async with open_http_client() as client:
        for _ in range(2):
            assert (await client.post(server.url, content=b"{}")).content == b"hello"
    assert server.accepted == 2
    assert len(server.requests) == 2


@pytest.mark.parametrize(
    "reply",
    [
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhel",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
        b"SMTP ready\r\n\r\n",
    ],
)
async def test_a_broken_or_cut_body_is_a_protocol_error(
    nursery: trio.Nursery, reply: bytes
) -> None:
    async def broken(stream: trio.SocketStream, server: Server) -> None:
        await server.read_request(stream)
        await stream.send_all(reply)

    server = await start_server(nursery, broken)
    async with open_http_client() as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(server.url, content=b"{}")
        with pytest.raises(httpx.RemoteProtocolError):
            await client.post(server.url, content=b"{}")
    assert server.accepted == 2  # a broken connection is never reused


async def test_a_body_without_framing_is_read_until_close(nursery: trio.Nursery) -> None:
    async def close_delimited(stream: trio.SocketStream, server: Server) -> None:
        await server.read_request(stream)
        await stream.send_all(b"HTTP/1.1 200 OK\r\n\r\nall of it")

    server = await start_server(nursery, close_delimited)
    async with open_http_client() as client:
        assert (await client.post(server.url, content=b"{}")).content == b"all of it"
        assert (await client.post(server.url, content=b"{}")).content == b"all of it"
    assert server.accepted == 2


async def test_leaving_a_body_early_closes_its_connection(nursery: trio.Nursery) -> None:
    async def endless(stream: trio.SocketStream, server: Server) -> None:
        await server.read_request(stream)
        await stream.send_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        try:
            while True:
                await stream.send_all(b"5\r\nhello\r\n")
                await trio.sleep(0.01)
        except trio.BrokenResourceError:
            server.closed.set()

    server = await start_server(nursery, endless)
    async with open_http_client() as client:
        async with client.stream("POST", server.url, content=b"{}") as response:
            chunks = response.aiter_bytes()
            async for data in chunks:
                assert data.startswith(b"hello")
                break
        # what http_chat does after closing early: run httpx's generators to their end
        with pytest.raises(httpx.StreamClosed):
            async for _ in chunks:
                pass
        with trio.fail_after(5):
            await server.closed.wait()


async def test_an_unknown_scheme_or_dead_port_is_an_httpx_error(nursery: trio.Nursery) -> None:
    with trio.socket.socket() as probe:
        await probe.bind(("127.0.0.1", 0))
        dead = probe.getsockname()[1]
    async with open_http_client() as client:
        with pytest.raises(httpx.UnsupportedProtocol):
            await client.post("ftp://127.0.0.1/x", content=b"{}")
        with pytest.raises(httpx.ConnectError):
            await client.post(f"http://127.0.0.1:{dead}/x", content=b"{}")


async def test_https_with_a_verified_certificate(nursery: trio.Nursery) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    accepted = 0

    async def tls(stream: trio.SocketStream) -> None:
        nonlocal accepted
        accepted += 1
        ssl_stream = trio.SSLStream(stream, server_context, server_side=True)
        server = Server()
        with contextlib.suppress(trio.BrokenResourceError):  # the untrusting client leaves
            while await server.read_request(ssl_stream):
                await ssl_stream.send_all(OK_CHUNKED)

    listeners = await nursery.start(partial(trio.serve_tcp, tls, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    transport = KeepAliveTransport(nursery, ssl_context=client_context)
    async with httpx.AsyncClient(transport=transport) as client:
        for _ in range(2):
            response = await client.post(f"https://localhost:{port}/x", content=b"{}")
            assert response.content == b"hello"
        other = KeepAliveTransport(nursery)  # the system's trust store does not know our CA
        async with httpx.AsyncClient(transport=other) as untrusting:
            with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await untrusting.post(f"https://localhost:{port}/x", content=b"{}")
    assert accepted == 2


async def test_body_chunks_reads_our_stream_and_returns_the_connection(
    nursery: trio.Nursery,
) -> None:
    server = await start_server(nursery, keep_alive)
    async with open_http_client() as client:
        for _ in range(2):
            async with client.stream("POST", server.url, content=b"{}") as response:
                chunks = body_chunks(response)
                assert chunks.__qualname__ == "_ResponseStream.__aiter__"  # httpx bypassed
                assert b"".join([data async for data in chunks]) == b"hello"
    assert server.accepted == 1  # the connection went back to the pool both times


async def test_body_chunks_leaves_an_encoded_body_to_httpx(nursery: trio.Nursery) -> None:
    body = gzip.compress(b"data: hello\n\n")

    async def gzipped(stream: trio.SocketStream, server: Server) -> None:
        while await server.read_request(stream):
            head = b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d\r\n\r\n"
            await stream.send_all(head % len(body) + body)

    server = await start_server(nursery, gzipped)
    async with (
        open_http_client() as client,
        client.stream("POST", server.url, content=b"{}") as response,
    ):
        assert b"".join([data async for data in body_chunks(response)]) == b"data: hello\n\n"


async def test_a_connection_reset_mid_body_is_a_read_error(nursery: trio.Nursery) -> None:
    async def reset(stream: trio.SocketStream, server: Server) -> None:
        await server.read_request(stream)
        await stream.send_all(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        )
        linger = struct.pack("ii", 1, 0)  # close with RST, not FIN
        stream.socket.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_LINGER, linger)
        stream.socket.close()

    server = await start_server(nursery, reset)
    async with (
        open_http_client() as client,
        client.stream("POST", server.url, content=b"{}") as response,
    ):
        with pytest.raises(httpx.ReadError, match="ConnectionResetError"):
            async for _ in body_chunks(response):
                pass


async def test_a_burst_of_new_connections_looks_the_name_up_once(nursery: trio.Nursery) -> None:
    lookups: list[bytes] = []

    class Resolver(trio.abc.HostnameResolver):
        async def getaddrinfo(self, host, port, family=0, type=0, proto=0, flags=0):  # type: ignore[no-untyped-def]
            lookups.append(host)
            await trio.sleep(0.01)  # slow, as DNS is: the others wait for this answer
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

        async def getnameinfo(self, sockaddr, flags):  # type: ignore[no-untyped-def]
            raise NotImplementedError

    server = await start_server(nursery, keep_alive)
    trio.socket.set_custom_hostname_resolver(Resolver())
    try:
        async with open_http_client() as client:
            url = f"http://upstream.test:{server.port}/v1/chat"

            async def post() -> None:
                assert (await client.post(url, content=b"{}")).content == b"hello"

            async with trio.open_nursery() as posts:
                for _ in range(5):
                    posts.start_soon(post)
    finally:
        trio.socket.set_custom_hostname_resolver(None)
    assert server.accepted == 5  # five connections at once...
    assert lookups == [b"upstream.test"]  # ...one lookup


async def test_preconnect_opens_the_connections_requests_then_use(nursery: trio.Nursery) -> None:
    server = await start_server(nursery, keep_alive)
    pool = KeepAliveTransport(nursery, max_connections=4)
    url = httpx.URL(server.url)
    try:
        assert await pool.preconnect(url, 3, within=5) == 3
        assert await pool.preconnect(url, 3, within=5) == 0  # three are open already

        async def post() -> None:
            response = await pool.post(url, {}, b"{}", {})
            assert await response.aread() == b"hello"

        async with trio.open_nursery() as posts:
            for _ in range(3):
                posts.start_soon(post)
        assert await pool.preconnect(url, 10, within=5) == 1  # never past max_connections
    finally:
        await pool.aclose()
    assert len(server.requests) == 3
    assert server.accepted == 4  # three opened ahead and used, one more up to the limit


async def test_preconnect_counts_connections_in_use(nursery: trio.Nursery) -> None:
    release, both_in = trio.Event(), trio.Event()

    async def slow(stream: trio.SocketStream, server: Server) -> None:
        await server.read_request(stream)
        if len(server.requests) == 2:
            both_in.set()
        await release.wait()
        await stream.send_all(OK_LENGTH)

    server = await start_server(nursery, slow)
    pool = KeepAliveTransport(nursery)
    url = httpx.URL(server.url)

    async def post() -> None:
        response = await pool.post(url, {}, b"{}", {})
        assert await response.aread() == b"hello"

    try:
        async with trio.open_nursery() as posts:
            for _ in range(2):
                posts.start_soon(post)
            await both_in.wait()
            assert await pool.preconnect(url, 3, within=5) == 1  # two are carrying requests
            release.set()
    finally:
        await pool.aclose()
    assert server.accepted == 3


async def test_preconnect_to_a_closed_port_raises_connect_error(nursery: trio.Nursery) -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    pool = KeepAliveTransport(nursery)
    try:
        with pytest.raises(httpx.ConnectError):
            await pool.preconnect(httpx.URL(f"http://127.0.0.1:{port}/"), 3, within=5)
    finally:
        await pool.aclose()


def _tls_contexts() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("localhost").configure_cert(server_context)
    client_context = ssl.create_default_context()
    ca.configure_trust(client_context)
    return server_context, client_context


async def test_a_stalled_tls_body_fails_at_the_read_timeout(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    server_context, client_context = _tls_contexts()

    async def stall(stream: trio.SocketStream) -> None:
        ssl_stream = trio.SSLStream(stream, server_context, server_side=True)
        with contextlib.suppress(trio.BrokenResourceError):
            await Server().read_request(ssl_stream)
            await ssl_stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel")
            await trio.sleep_forever()

    listeners = await nursery.start(partial(trio.serve_tcp, stall, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    pool = KeepAliveTransport(nursery, ssl_context=client_context)
    try:
        response = await pool.post(
            httpx.URL(f"https://localhost:{port}/x"), {}, b"{}", {"read": 4.0}
        )
        start = trio.current_time()
        with pytest.raises(httpx.ReadTimeout):
            await response.aread()
        assert trio.current_time() - start == pytest.approx(4.0)
        await response.aclose()
    finally:
        await pool.aclose()


async def test_each_read_keeps_its_own_deadline(
    autojump_clock: MockClock, nursery: trio.Nursery
) -> None:
    """Three streams on one pool: one sends a byte a second for 20 s, two stall.
    The stalled ones fail at their own read timeouts (one shorter than the
    deadline the pool was already waiting for); the live one is untouched,
    and its connection goes back to the pool."""

    async def serve(stream: trio.SocketStream, server: Server) -> None:
        head = await server.read_request(stream)
        if b"/live" not in head:
            await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n")
            await trio.sleep_forever()
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n")
        for _ in range(20):
            await trio.sleep(1)
            await stream.send_all(b"x")
        await server.read_request(stream)  # the connection is reused
        await stream.send_all(OK_LENGTH)

    server = await start_server(nursery, serve)
    pool = KeepAliveTransport(nursery)
    base = f"http://127.0.0.1:{server.port}"
    failed: dict[str, float] = {}

    async def stalled(path: str, read: float, after: float) -> None:
        await trio.sleep(after)
        response = await pool.post(httpx.URL(base + path), {}, b"{}", {"read": read})
        start = trio.current_time()
        with pytest.raises(httpx.ReadTimeout):
            await response.aread()
        failed[path] = trio.current_time() - start
        await response.aclose()

    try:
        async with trio.open_nursery() as streams:
            streams.start_soon(stalled, "/long", 10.0, 0.0)
            streams.start_soon(stalled, "/short", 3.0, 1.0)  # due before /long's deadline
            live = await pool.post(httpx.URL(base + "/live"), {}, b"{}", {"read": 5.0})
            assert await live.aread() == b"x" * 20
            await live.aclose()
        assert failed == {"/long": pytest.approx(10.0), "/short": pytest.approx(3.0)}
        again = await pool.post(httpx.URL(base + "/live"), {}, b"{}", {"read": 5.0})
        assert await again.aread() == b"hello"
        await again.aclose()
    finally:
        await pool.aclose()
    assert server.accepted == 3  # the live connection carried the second request
