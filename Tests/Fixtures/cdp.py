"""Headless Chromium driven over the DevTools protocol (CDP), for the browser tests
(dashboard_browser.py, client_browser.py)."""
import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request

import websockets

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class Page:
    """One page target: send a CDP command, get its result."""

    def __init__(self, socket):
        self.socket = socket
        self.next_id = 0

    async def call(self, method, **params):
        self.next_id += 1
        ident = self.next_id
        await self.socket.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(await self.socket.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})

    async def evaluate(self, expression):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression, what, timeout=60):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            # The page may still be loading: an error in the check counts as not yet.
            value = await self.evaluate(f"(() => {{ try {{ return ({expression}); }} catch (e) {{ return false; }} }})()")
            if value:
                return value
            await asyncio.sleep(0.05)
        raise TimeoutError(f"timed out after {timeout} s waiting for {what}")


@contextlib.asynccontextmanager
async def chromium_page(window="1440,1100", page_class=Page):
    """Starts headless Chromium with a profile of its own and yields its first page (a `page_class`)."""
    profile = tempfile.mkdtemp(prefix="genflow-chromium-")
    browser = subprocess.Popen([
        CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
        "--remote-debugging-port=0", f"--user-data-dir={profile}", f"--window-size={window}", "about:blank",
    ], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = os.path.join(profile, "DevToolsActivePort")
        deadline = time.monotonic() + 30
        while not (os.path.exists(port_file) and open(port_file).read().strip()):
            if time.monotonic() > deadline or browser.poll() is not None:
                raise RuntimeError(f"chromium did not start ({CHROMIUM})")
            await asyncio.sleep(0.05)
        port = open(port_file).read().split()[0]
        targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list"))
        target = next(t for t in targets if t["type"] == "page")
        async with websockets.connect(target["webSocketDebuggerUrl"], max_size=64 * 1024 * 1024) as socket:
            page = page_class(socket)
            await page.call("Page.enable")
            await page.call("Runtime.enable")
            yield page
    finally:
        browser.kill()
        browser.wait()
        shutil.rmtree(profile, ignore_errors=True)
