"""A headless Chromium driven over the DevTools protocol on a pipe: no driver, no websocket, no
package beyond the standard library. Chromium reads commands on fd 3 and writes replies and
events on fd 4, each one JSON message ended by a NUL byte."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    return next((path for name in NAMES if (path := shutil.which(name))), None)


class Browser:
    """One headless browser with one page; `call` sends a command and waits for its reply."""

    def __init__(self, executable: str, deadline: float, width: int = 1400, height: int = 900):
        self.deadline = deadline
        self.profile = tempfile.mkdtemp(prefix="charrnn-chromium-")
        to_browser, self._commands = os.pipe()  # we write commands; it reads them on fd 3
        self._replies, from_browser = os.pipe()  # it writes on fd 4; we read

        def on_fds_3_and_4():
            os.dup2(to_browser, 3)
            os.dup2(from_browser, 4)

        self.process = subprocess.Popen(
            [
                executable,
                "--headless",
                "--no-sandbox",  # CI runs as root, where Chromium's sandbox will not start
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--remote-debugging-pipe",
                f"--user-data-dir={self.profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            pass_fds=(3, 4),
            preexec_fn=on_fds_3_and_4,
            start_new_session=True,  # its helpers too are ended with it (close)
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_browser)
        os.close(from_browser)
        self._next_id = 0
        self._messages: list[dict] = []
        self._cv = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        attached = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})
        self.session = attached["sessionId"]
        for domain in ("Page", "Runtime"):
            self.call(f"{domain}.enable", session=True)

    def _read(self) -> None:
        buffer = b""
        with os.fdopen(self._replies, "rb", buffering=0) as f:
            while chunk := f.read(1 << 16):
                buffer += chunk
                *messages, buffer = buffer.split(b"\0")
                with self._cv:
                    self._messages += [json.loads(m) for m in messages]
                    self._cv.notify_all()

    def call(self, method: str, params: dict | None = None, session: bool = False) -> dict:
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = self.session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        end = time.monotonic() + self.deadline
        with self._cv:
            while True:
                for m in self._messages:
                    if m.get("id") == self._next_id:
                        self._messages.remove(m)
                        if "error" in m:
                            raise RuntimeError(f"{method}: {m['error']}")
                        return m["result"]
                left = end - time.monotonic()
                if left <= 0 or self.process.poll() is not None:
                    raise TimeoutError(f"no reply to {method}")
                self._cv.wait(min(left, 1.0))

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (awaited if it is a promise)."""
        result = self.call(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session=True,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def open(self, url: str, ready: str) -> None:
        """Go to `url` and wait until the expression `ready` is true there."""
        self.call("Page.navigate", {"url": url}, session=True)
        self.wait_for(ready)

    def wait_for(self, expression: str) -> None:
        end = time.monotonic() + self.deadline
        while not self.evaluate(f"Boolean({expression})"):
            if time.monotonic() > end:
                raise TimeoutError(f"never true: {expression}")
            time.sleep(0.05)  # polling an observable condition, not waiting a fixed time

    def click(self, selector: str) -> None:
        """A real mouse click (pressed and released) at the middle of the element."""
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView({block: 'center'}); const r = e.getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1},
                session=True,
            )

    def type_into(self, selector: str, text: str) -> None:
        """Replace what the field holds with `text`, typed as a person types it (a number field
        keeps what it cannot read as typed, where a script's value would be emptied)."""
        self.evaluate(f"document.querySelector({json.dumps(selector)}).select()")
        self.call("Input.insertText", {"text": text}, session=True)

    def exceptions(self) -> list[dict]:
        """Uncaught script errors so far."""
        with self._cv:
            return [m for m in self._messages if m.get("method") == "Runtime.exceptionThrown"]

    def screenshot(self) -> bytes:
        import base64

        return base64.b64decode(self.call("Page.captureScreenshot", session=True)["data"])

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._commands)
        # The whole group: a helper process left alive wrote into the profile after it was removed
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
