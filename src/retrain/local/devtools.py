"""Headless Chromium driven through the DevTools protocol: a person's browser for the tests
that log in to the Airflow UI and open the reports inside it (and for the README's screenshot).

``browser.py`` renders a file; this drives a live page: navigate, type into a form, wait for a
condition, read a (sandboxed) iframe's document, take a screenshot. Debian's ``chromium`` and
the ``websockets`` package (already locked, uvicorn's) are all it needs; it reaches
nothing but 127.0.0.1 (``LOOPBACK_ONLY``).
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from retrain.local.browser import BrowserError, chromium

_LISTENING = re.compile(r"DevTools listening on (ws://\S+)")
# Nothing but the loopback address: every other name unresolvable, every other host behind a
# dead proxy (``browser.OFFLINE`` with 127.0.0.1 let through, where the stack listens).
LOOPBACK_ONLY = [
    "--proxy-server=127.0.0.1:9",
    "--proxy-bypass-list=127.0.0.1",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
_QUIET = [
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
]


class Page:
    """One tab, spoken to over its DevTools websocket."""

    def __init__(self, ws_url: str) -> None:
        from websockets.sync.client import connect

        self._ws = connect(ws_url, max_size=64 * 1024 * 1024, open_timeout=10)
        self._ids = itertools.count(1)

    def call(self, method: str, timeout: float = 30.0, **params: Any) -> dict[str, Any]:
        n = next(self._ids)
        self._ws.send(json.dumps({"id": n, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            message = json.loads(self._ws.recv(timeout=max(deadline - time.monotonic(), 0.1)))
            if message.get("id") != n:
                continue  # an event
            if "error" in message:
                raise BrowserError(f"{method}: {message['error']}")
            return message.get("result", {})

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise BrowserError(f"{expression[:80]}: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def goto(self, url: str, timeout: float = 30.0) -> None:
        self.call("Page.navigate", url=url)
        self.wait_for("document.readyState === 'complete'", timeout)

    def wait_for(self, expression: str, timeout: float = 30.0, what: str = "") -> Any:
        """Poll ``expression`` in the page until it is truthy (bounded)."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(BrowserError):
                if value := self.evaluate(expression):
                    return value
            if time.monotonic() > deadline:
                raise BrowserError(f"gave up after {timeout:.0f}s waiting for {what or expression}")
            time.sleep(0.25)

    def fill(self, selector: str, value: str) -> None:
        """Type into an input the way a user does (so React sees the change)."""
        script = (
            "(sel, value) => {const el = document.querySelector(sel);"
            "const set = Object.getOwnPropertyDescriptor(HTMLInputElement.prototype, 'value').set;"
            "set.call(el, value); el.dispatchEvent(new Event('input', {bubbles: true}));"
            "el.dispatchEvent(new Event('change', {bubbles: true}));}"
        )
        self.evaluate(f"({script})({json.dumps(selector)}, {json.dumps(value)})")

    def frame_documents(self) -> list[str]:
        """The HTML of every iframe's document in the page, sandboxed ones included."""
        root = self.call("DOM.getDocument", depth=-1, pierce=True)["root"]
        found: list[str] = []

        def walk(node: dict[str, Any]) -> None:
            doc = node.get("contentDocument")
            if node.get("nodeName") == "IFRAME" and doc:
                html = self.call("DOM.getOuterHTML", backendNodeId=doc["backendNodeId"])
                found.append(html.get("outerHTML", ""))
            for child in [*(node.get("children") or []), *([doc] if doc else [])]:
                walk(child)

        walk(root)
        return found

    def wait_for_frame(self, text: str, timeout: float = 30.0) -> str:
        """The first iframe document that contains ``text`` (bounded wait)."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(BrowserError):
                for html in self.frame_documents():
                    if text in html:
                        return html
            if time.monotonic() > deadline:
                raise BrowserError(f"no frame showed {text!r} within {timeout:.0f}s")
            time.sleep(0.5)

    def screenshot(self, out: Path) -> Path:
        data = self.call("Page.captureScreenshot", format="png")["data"]
        out.write_bytes(base64.b64decode(data))
        return out

    def close(self) -> None:
        self._ws.close()


@contextlib.contextmanager
def open_browser(size: tuple[int, int] = (1400, 1000), timeout: float = 30.0) -> Iterator[Page]:
    """A headless Chromium with a fresh profile; its first tab, closed (and the browser ended)
    on exit."""
    with tempfile.TemporaryDirectory(prefix="chromium-", ignore_cleanup_errors=True) as profile:
        proc = subprocess.Popen(
            [
                chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                *LOOPBACK_ONLY,
                *_QUIET,
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                f"--window-size={size[0]},{size[1]}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,  # its helper processes go with it
        )
        page = None
        try:
            browser_ws = _listening(proc, timeout)
            port = browser_ws.split("//", 1)[1].split("/", 1)[0]
            with urllib.request.urlopen(f"http://{port}/json/list", timeout=10) as response:
                targets = json.loads(response.read())
            tab = next(t for t in targets if t.get("type") == "page")
            page = Page(tab["webSocketDebuggerUrl"])
            page.call("Page.enable")
            yield page
        finally:
            if page is not None:
                page.close()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


def _listening(proc: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if found := _LISTENING.search(line):
            return found.group(1)
    raise BrowserError(f"chromium did not open DevTools: {''.join(seen)[-2000:]}")
