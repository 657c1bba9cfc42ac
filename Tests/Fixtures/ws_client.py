#!/usr/bin/python3
"""A WebSocket client for the tests, on the `websockets` library (Debian's python3-websockets).

    ws_client.py URL

Each line on stdin is sent as a text message; each message received is printed as one line on
stdout. Lines starting with {"op": "_ describe the connection itself: _open, _refused (with the
HTTP status), _closed (with the close code). Closing stdin closes the connection and exits."""
import asyncio
import json
import sys

import websockets


def say(message):
    print(json.dumps(message), flush=True)


async def main(url):
    try:
        async with websockets.connect(url, max_size=None, ping_interval=None, open_timeout=10) as socket:
            say({"op": "_open"})
            loop = asyncio.get_running_loop()
            reader = asyncio.StreamReader()
            await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)

            async def forward():
                while True:
                    line = await reader.readline()
                    if not line:
                        await socket.close()
                        return
                    await socket.send(line.decode().strip())

            sender = asyncio.create_task(forward())
            try:
                async for message in socket:
                    print(message, flush=True)
            except websockets.exceptions.ConnectionClosed:
                pass
            sender.cancel()
            say({"op": "_closed", "code": socket.close_code, "reason": socket.close_reason})
    except websockets.exceptions.InvalidStatusCode as error:
        say({"op": "_refused", "status": error.status_code})
    except (OSError, asyncio.TimeoutError, websockets.exceptions.InvalidHandshake) as error:
        say({"op": "_refused", "status": 0, "error": str(error)})


asyncio.run(main(sys.argv[1]))
