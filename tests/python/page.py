#!/usr/bin/env python3
"""Drives kaq serve's page in headless Chromium over the DevTools protocol (a pipe, no packages).

usage: page.py CHROMIUM URL SCREENSHOT.png

Types `verb:delete ns:prod*` into the query box, presses Enter, waits for the answers, reads the
rows and the histogram; clicks the first user of the Users panel and reads the narrowed query and
rows; types a broken query and reads the error shown; saves a screenshot of the first answer.
Prints one JSON object with what it saw (the Rust test asserts on it).
"""

import base64
import json
import os
import subprocess
import sys
import tempfile
import time

chromium, url, shot = sys.argv[1], sys.argv[2], sys.argv[3]

to_chrome_r, to_chrome_w = os.pipe()
from_chrome_r, from_chrome_w = os.pipe()


def child_fds():
    # Chromium reads commands on fd 3 and writes answers on fd 4 (--remote-debugging-pipe).
    os.dup2(to_chrome_r, 100)
    os.dup2(from_chrome_w, 101)
    os.dup2(100, 3)
    os.dup2(101, 4)


profile = tempfile.mkdtemp(prefix="kaq-chromium-")
proc = subprocess.Popen(
    [chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--no-default-browser-check",
     "--remote-debugging-pipe", "--window-size=1280,860", f"--user-data-dir={profile}", "about:blank"],
    stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    preexec_fn=child_fds, close_fds=False)
os.close(to_chrome_r)
os.close(from_chrome_w)
out = os.fdopen(to_chrome_w, "wb", buffering=0)
inp = os.fdopen(from_chrome_r, "rb", buffering=0)
buf = b""
next_id = 0
session = None


def send(method, params=None, sess=True):
    global next_id, buf
    next_id += 1
    msg = {"id": next_id, "method": method, "params": params or {}}
    if sess and session:
        msg["sessionId"] = session
    out.write(json.dumps(msg).encode() + b"\0")
    while True:
        while b"\0" not in buf:
            chunk = inp.read(65536)
            if not chunk:
                raise SystemExit("chromium closed the pipe")
            buf += chunk
        raw, buf = buf.split(b"\0", 1)
        m = json.loads(raw)
        if m.get("id") == next_id:
            if "error" in m:
                raise SystemExit(f"{method}: {m['error']}")
            return m.get("result", {})


def js(expr):
    r = send("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": True})
    if "exceptionDetails" in r:
        raise SystemExit(f"{expr}: {r['exceptionDetails']}")
    return r["result"].get("value")


def wait_idle(what, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if js("document.readyState === 'complete' && window.kaqBusy && !window.kaqBusy()"):
            time.sleep(0.2)
            if not js("window.kaqBusy()"):
                return
        time.sleep(0.1)
    raise SystemExit(f"timed out waiting for {what}")


def key(k, code, vk, text=None):
    base = {"key": k, "code": code, "windowsVirtualKeyCode": vk, "nativeVirtualKeyCode": vk}
    down = dict(base, type="keyDown")
    if text:
        down["text"] = text
    send("Input.dispatchKeyEvent", down)
    send("Input.dispatchKeyEvent", dict(base, type="keyUp"))


def click(selector):
    rect = js(f"(() => {{ const r = document.querySelector({json.dumps(selector)}).getBoundingClientRect();"
              " return [r.x + r.width / 2, r.y + r.height / 2]; })()")
    for t in ("mousePressed", "mouseReleased"):
        send("Input.dispatchMouseEvent", {"type": t, "x": rect[0], "y": rect[1], "button": "left", "clickCount": 1})


def type_text(text):
    for ch in text:
        send("Input.insertText", {"text": ch})


def seen():
    return js("""(() => ({
        query: document.getElementById('q').value,
        rows: document.querySelectorAll('#rows tbody tr').length,
        users: [...document.querySelectorAll('#rows tbody tr')].map(tr => tr.children[1].textContent),
        verbs: [...document.querySelectorAll('#rows tbody tr')].map(tr => tr.children[2].textContent),
        namespaces: [...document.querySelectorAll('#rows tbody tr')].map(tr => tr.children[3].textContent),
        bars: document.querySelectorAll('#chart rect.bar').length,
        summary: document.getElementById('summary').textContent,
        top_users: [...document.querySelectorAll('.top[data-field=user] li .v')].map(e => e.textContent),
        error: document.getElementById('error').hidden ? null : document.getElementById('error').textContent,
        underlined: document.querySelector('#qmirror mark') ? document.querySelector('#qmirror mark').textContent : null,
    }))()""")


result = {}
try:
    target = send("Target.createTarget", {"url": "about:blank"}, sess=False)["targetId"]
    session = send("Target.attachToTarget", {"targetId": target, "flatten": True}, sess=False)["sessionId"]
    send("Page.enable")
    send("Runtime.enable")
    send("Page.navigate", {"url": url})
    time.sleep(0.5)
    wait_idle("the page")
    js("document.getElementById('q').focus()")
    type_text("verb:delete ns:pro")
    # Completion offers values while typing `ns:pro` (they come from /api/fields).
    result["suggested"] = js("[...document.querySelectorAll('#suggest li span')].map(e => e.textContent)")
    type_text("d*")
    key("Enter", "Enter", 13, "\r")
    time.sleep(0.3)
    wait_idle("the answer")
    result["first"] = seen()
    png = send("Page.captureScreenshot", {"format": "png"})["data"]
    with open(shot, "wb") as f:
        f.write(base64.b64decode(png))
    click(".top[data-field=user] li")
    time.sleep(0.3)
    wait_idle("the narrowed answer")
    result["clicked"] = seen()
    js("document.getElementById('q').value = ''")
    js("document.getElementById('q').focus()")
    type_text("verb:delete | head x")
    key("Enter", "Enter", 13, "\r")
    time.sleep(0.3)
    wait_idle("the error")
    result["broken"] = seen()
finally:
    try:
        send("Browser.close", sess=False)
    except BaseException:
        pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
print(json.dumps(result))
