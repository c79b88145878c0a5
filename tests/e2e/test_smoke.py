import trio


async def test_ping(server):
    async with server.client() as client:
        with trio.fail_after(5):
            reply = await client.call("ping")
    assert reply == {"action": "pong", "payload": {}, "request_id": "r-1"}
