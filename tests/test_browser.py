"""The site in a real browser: headless Chromium driven over the Chrome DevTools protocol.

A learner opens ``index.html`` from ``file://``, clicks a concept and reads both twins side by
side. Here Chromium does that: no console errors, every image decoded, the two code panes side
by side (their bounding boxes), both ``forward``s at the same height, at 1280 px, at 900 px and
at a projector's 1920 px; screenshots are kept in the test's temporary directory.

Chromium is Debian's ``chromium`` package (``.ci/run`` installs it when missing); the CDP client
is ``websocket-client`` from the ``dev`` extra. Without either, the test skips and says why.
"""
import base64
import itertools
import json
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from compare import registry
from compare.site import build_site

CONCEPTS = ("layernorm", "linear")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-extensions", "--remote-debugging-port=0")


def _chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("no chromium on PATH (Debian: apt-get install -y chromium; .ci/run installs "
                "it where apt-get is allowed)")


class Browser:
    """A minimal DevTools-protocol client: commands by id, events kept for inspection."""

    def __init__(self, websocket_url: str):
        import websocket
        self.socket = websocket.create_connection(websocket_url, timeout=60,
                                                  suppress_origin=True)
        self.ids = itertools.count(1)
        self.events: list[dict] = []

    def send(self, method: str, **params):
        number = next(self.ids)
        self.socket.send(json.dumps({"id": number, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv())
            if message.get("id") == number:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})
            self.events.append(message)

    def wait_for(self, event: str, timeout: float = 60.0) -> dict:
        deadline = time.monotonic() + timeout
        seen = len(self.events)
        while time.monotonic() < deadline:
            for message in self.events[seen:]:
                if message.get("method") == event:
                    self.events.remove(message)
                    return message
            seen = len(self.events)
            self.events.append(json.loads(self.socket.recv()))
        raise TimeoutError(event)

    def open(self, url: str) -> None:
        self.events = [e for e in self.events if e.get("method") != "Page.loadEventFired"]
        self.send("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")

    def evaluate(self, expression: str):
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(result["exceptionDetails"])
        return result["result"].get("value")

    def viewport(self, width: int, height: int = 1000) -> None:
        self.send("Emulation.setDeviceMetricsOverride", width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def screenshot(self, path: Path) -> Path:
        data = self.send("Page.captureScreenshot", format="png")["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def errors(self) -> list[str]:
        found = []
        for e in self.events:
            method, params = e.get("method"), e.get("params", {})
            if method == "Runtime.exceptionThrown":
                found.append(str(params["exceptionDetails"].get("text")))
            elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error",
                                                                                 "assert"):
                found.append(str(params.get("args")))
            elif method == "Log.entryAdded" and params["entry"].get("level") == "error":
                found.append(params["entry"].get("text", ""))
        return found


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("site") / "site"
    build_site(directory, [registry.get(n) for n in CONCEPTS], seed=0)
    return directory


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    pytest.importorskip("websocket", reason="websocket-client (the dev extra) drives chromium")
    executable = _chromium()
    profile = tmp_path_factory.mktemp("chromium-profile")
    process = subprocess.Popen([executable, *FLAGS, f"--user-data-dir={profile}",
                                "about:blank"], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"chromium did not start (exit {process.poll()})")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=30) as r:
            targets = json.load(r)
        page = next(t for t in targets if t.get("type") == "page")
        client = Browser(page["webSocketDebuggerUrl"])
        for domain in ("Page", "Runtime", "Log"):
            client.send(f"{domain}.enable")
        yield client
        client.socket.close()
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


IMAGES = """Array.from(document.images).map(i => ({src: i.getAttribute('src'),
    complete: i.complete, width: i.naturalWidth}))"""

FORWARD = """(() => {
  const row = document.querySelector('.pair[data-role$=".forward"]');
  const panes = Array.from(row.querySelectorAll(':scope > .pane'));
  const box = e => { const r = e.getBoundingClientRect();
                     return {left: r.left, right: r.right, top: r.top, width: r.width}; };
  const def = pane => Array.from(pane.querySelectorAll('.line'))
      .find(l => l.querySelector('.src').textContent.trim().startsWith('def forward'));
  return {panes: panes.map(p => p.className), boxes: panes.map(box),
          defs: panes.map(p => box(def(p))),
          overflow: document.scrollingElement.scrollWidth - window.innerWidth};
})()"""


def test_a_learner_opens_the_index_clicks_a_concept_and_reads_both_twins(browser, site,
                                                                          tmp_path):
    browser.viewport(1280)
    browser.open((site / "index.html").as_uri())
    assert browser.evaluate("document.title").startswith("dualgrad")
    links = browser.evaluate("Array.from(document.querySelectorAll('table.index a'))"
                             ".map(a => a.textContent)")
    assert sorted(links) == sorted(CONCEPTS)
    browser.screenshot(tmp_path / "index.png")
    browser.send("Runtime.evaluate",
                 expression="document.querySelector(\"a[href='layernorm.html']\").click()")
    browser.wait_for("Page.loadEventFired")
    assert browser.evaluate("location.href").endswith("/layernorm.html")
    assert browser.errors() == []

    for name in CONCEPTS:
        for width in (1280, 900, 1920):  # a laptop, a narrow window, a projector
            browser.viewport(width)
            browser.open((site / f"{name}.html").as_uri())
            images = browser.evaluate(IMAGES)
            assert images and all(i["complete"] and i["width"] > 0 for i in images), images
            layout = browser.evaluate(FORWARD)
            numpy_box, torch_box = layout["boxes"]
            assert layout["panes"] == ["pane numpy", "pane torch"]
            # side by side: the NumPy pane left of the torch pane, same top, similar widths
            assert numpy_box["right"] <= torch_box["left"], layout
            assert abs(numpy_box["top"] - torch_box["top"]) <= 2, layout
            assert numpy_box["width"] > 0.3 * width and torch_box["width"] > 0.3 * width
            # both forwards start at the same height
            assert abs(layout["defs"][0]["top"] - layout["defs"][1]["top"]) <= 3, layout
            assert layout["overflow"] <= 0, f"{name} scrolls sideways at {width} px"
            shot = browser.screenshot(tmp_path / f"{name}-{width}.png")
            assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert browser.errors() == [], name
