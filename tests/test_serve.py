"""`tangshi serve`: the JSON API through FastAPI's TestClient (httpx) with the bundled model, and
the page in Debian's Chromium driven by Playwright against a real `tangshi serve` process.

The API's answers are compared with what the command line prints for the same options; the
refusals with the one-line messages the decoding options give."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tangshi.cli.main import main
from tangshi.model.bundled import bundled_model_path
from tangshi.model.checkpoint import load_checkpoint
from tangshi.serve.app import MAX_BODY, MAX_N, create_app
from tangshi.serve.pool import Pool
from tangshi.text import to_simplified

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = Path(__file__).resolve().parents[1] / "docs" / "serve.png"


@pytest.fixture(scope="module")
def loaded():
    model, vocab, _ = load_checkpoint(bundled_model_path())
    return model, vocab


@pytest.fixture(scope="module")
def client(loaded):
    return TestClient(create_app(*loaded, workers=2, queue=4))


def cli_json(capsys, argv):
    assert main(argv + ["--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_poems_are_what_generate_prints(client, capsys):
    got = client.post("/api/poems", json={"form": "qijue", "acrostic": "春夏秋冬", "n": 2, "seed": 1})
    assert got.status_code == 200
    assert got.json() == cli_json(
        capsys, ["generate", "--form", "qijue", "--acrostic", "春夏秋冬", "--n", "2", "--seed", "1"]
    )
    body = {
        "form": "wulv",
        "start": "白日依山盡，黃河入海流。",
        "keywords": "月",
        "tone": "strict",
        "n": 3,
        "seed": 4,
        "candidates": 2,
        "script": "simplified",
        "allow_repeats": True,
        "temperature": 1.1,
        "top_p": 0.95,
    }
    argv = [
        "generate",
        "--form",
        "wulv",
        "--start",
        "白日依山盡，黃河入海流。",
        "--keywords",
        "月",
        "--tone",
        "strict",
        "--n",
        "3",
        "--seed",
        "4",
        "--candidates",
        "2",
        "--script",
        "simplified",
        "--allow-repeats",
        "--temperature",
        "1.1",
        "--top-p",
        "0.95",
    ]
    assert client.post("/api/poems", json=body).json() == cli_json(capsys, argv)


def test_couplet_is_what_couplet_prints(client, capsys):
    got = client.post("/api/couplet", json={"first": "兩個黃鸝鳴翠柳", "n": 3, "seed": 2})
    assert got.status_code == 200
    assert got.json() == cli_json(capsys, ["couplet", "兩個黃鸝鳴翠柳", "--n", "3", "--seed", "2"])


def test_defaults_are_the_command_lines(client, capsys):
    assert client.post("/api/poems", json={}).json() == cli_json(capsys, ["generate"])


@pytest.mark.parametrize(
    "path, body, status, message, field",
    [
        ("/api/poems", {"form": "sonnet"}, 422, "form: Input should be", "form"),
        (
            "/api/poems",
            {"form": "qijue", "acrostic": "春夏秋"},
            400,
            "acrostic '春夏秋' has 3 characters but a 七言絕句 has 4 lines",
            "acrostic",
        ),
        ("/api/poems", {"n": MAX_N + 1}, 422, f"n: Input should be less than or equal to {MAX_N}", "n"),
        ("/api/poems", {"n": 50, "candidates": 9}, 422, "n × candidates must be at most", "candidates"),
        ("/api/poems", {"checkpoint": "/etc/passwd"}, 422, "unknown field 'checkpoint'", "checkpoint"),
        ("/api/poems", {"temperature": -1}, 400, "--temperature must be a finite number > 0", "temperature"),
        ("/api/poems", {"n": "two"}, 422, "n: Input should be a valid integer", "n"),
        (
            "/api/poems",
            {"form": "wujue", "keywords": "月，"},
            400,
            "contain '，', which is not a Chinese character",
            "keywords",
        ),
        ("/api/poems", {"form": "wujue", "at": 9, "acrostic": "春夏秋冬"}, 400, "--at must be a position", "at"),
        ("/api/poems", {"start": "白" * 201}, 422, "start: String should have at most 200 characters", "start"),
        ("/api/couplet", {"first": "ab"}, 400, "上联 'ab' contains 'a', which is not a Chinese character", "first"),
        ("/api/couplet", {}, 422, "first: Field required", "first"),
        ("/api/poems", {"n": "2"}, 422, "n: Input should be a valid integer", "n"),  # strict: JSON has its own types
        ("/api/poems", {"rhyme": "yes"}, 422, "rhyme: Input should be a valid boolean", "rhyme"),
        ("/api/poems", {"candidates": -1}, 422, "candidates: Input should be greater than or equal to 1", "candidates"),
        (
            "/api/poems",
            {"form": "wujue", "rhyme_group": "東", "rhyme": False},
            400,
            "cannot be given with --no-rhyme",
            "rhyme_group",
        ),
        ("/api/poems", {"start": "。。"}, 400, "has an empty clause", "start"),
        ("/api/poems", {"form": "wujue", "strategy": "original", "start": "春"}, 400, "takes no form", "strategy"),
        ("/api/poems", {"template": "□□□□，□□□□□。"}, 400, "4/5 characters", "template"),
        ("/api/poems", {"template": "□□□□□，□□□□□。□□□□□，□□□□鑫。"}, 400, "in the template", "template"),
        ("/api/poems", {"revise": "2"}, 400, "give the poem with --template", "revise"),
        ("/api/poems", {"form": "qilv", "parallel": 11.0}, 400, "--parallel must be a number", "parallel"),
        ("/api/revise", {"template": "□□□□□，□□□□□。□□□□□，□□□□□。", "revise": "7"}, 400, "from 1 to 4", "revise"),
    ],
)
def test_bad_requests_get_one_line(client, path, body, status, message, field):
    r = client.post(path, json=body)
    assert r.status_code == status, r.text
    out = r.json()
    assert set(out) <= {"error", "field"} and message in out["error"] and "\n" not in out["error"], out
    assert out.get("field") == field
    assert client.get("/api/health").status_code == 200  # and it keeps serving


def test_every_error_has_one_shape(client):
    for method, path, status in (
        ("get", "/nowhere", 404),
        ("get", "/static/../x", 404),
        ("get", "/api/poems", 405),
        ("delete", "/api/couplet", 405),
    ):
        r = getattr(client, method)(path)
        assert r.status_code == status and set(r.json()) == {"error", "field"} and r.json()["field"] is None, r.text
    r = client.post("/api/poems", content=b'{"start": "\xff"}', headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500 and set(r.json()) == {"error", "field"}, r.text
    r = client.post("/api/poems", json={"start": "春" * 150, "form": "wujue"})
    assert r.status_code == 400 and len(r.json()["error"]) <= 500  # a huge input is not echoed whole


def test_malformed_bodies(client):
    for data, message in (("not json", "not valid JSON"), ("[1, 2]", "must be a JSON object")):
        r = client.post("/api/poems", content=data, headers={"content-type": "application/json"})
        assert r.status_code == 422 and message in r.json()["error"], r.text
    r = client.post("/api/poems", content=b"{" + b" " * (1 << 20) + b"}", headers={"content-type": "application/json"})
    too_large = {"error": f"the request body is larger than {MAX_BODY} bytes", "field": None}
    assert r.status_code == 413 and r.json() == too_large

    def chunks():  # no Content-Length: refused while it streams in
        for _ in range(40):
            yield b" " * 1024

    r = client.post("/api/poems", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert client.post("/api/poems", json={"form": "wujue"}).status_code == 200


def test_controls_endpoints(client, loaded):
    forms = client.get("/api/forms").json()
    assert [f["name"] for f in forms["forms"]] == ["wujue", "qijue", "wulv", "qilv", "free"]
    props = forms["poems"]
    assert (
        props["temperature"]["default"] == 0.8 and props["top_p"]["default"] == 0.9 and props["n"]["maximum"] == MAX_N
    )
    assert {
        "title",
        "topic",
        "form",
        "start",
        "acrostic",
        "at",
        "template",
        "revise",
        "keywords",
        "rhyme",
        "rhyme_group",
        "tone",
        "parallel",
        "allow_repeats",
        "strategy",
        "temperature",
        "top_k",
        "top_p",
        "beam",
        "seed",
        "n",
        "candidates",
        "script",
    } == set(props)
    assert set(forms["couplet"]) == {
        "first",
        "tone",
        "parallel",
        "strategy",
        "temperature",
        "top_k",
        "top_p",
        "beam",
        "seed",
        "n",
        "candidates",
        "script",
    }
    groups = client.get("/api/rhyme-groups").json()["groups"]
    assert len(groups) == 30 and groups[0]["group"] == "上平聲一東" and groups[0]["known"] > 0
    assert client.get("/api/tones", params={"text": "白日依山東行"}).json()["tones"] == [
        "仄",
        "仄",
        "平",
        "平",
        "平",
        "平仄",
    ]
    health = client.get("/api/health").json()
    assert health["status"] == "ok" and health["vocabulary"] == len(loaded[1])
    assert client.get("/docs").status_code == 404  # Swagger UI would need a CDN
    assert client.get("/openapi.json").json()["paths"]["/api/poems"]
    page = client.get("/").text
    assert "<form" in page and "http" not in re.sub(r"(?s)<footer>.*</footer>", "", page)  # no external asset
    for name in ("app.js", "style.css"):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and "http://" not in r.text and "https://" not in r.text
    assert client.get("/static/../pyproject.toml").status_code == 404


def test_full_queue_answers_503_and_slow_requests_504(loaded):
    import asyncio

    pool = Pool(workers=1, queue=0)
    gate = threading.Event()

    async def two():
        first = asyncio.ensure_future(pool.run(gate.wait, timeout=5))
        await asyncio.sleep(0.05)
        with pytest.raises(Exception, match="the server is busy"):
            await pool.run(lambda: None, timeout=5)
        gate.set()
        assert await first is True
        assert await pool.run(lambda: 7, timeout=5) == 7  # the slot is free again

    asyncio.run(two())

    async def queued_then_timed_out():  # a request that times out before a worker takes it never runs
        gate.clear()
        ran = []
        busy = asyncio.ensure_future(pool.run(gate.wait, timeout=5))
        await asyncio.sleep(0.05)
        with pytest.raises(TimeoutError):
            await pool.run(lambda: ran.append(1), timeout=0.05)
        gate.set()
        await busy
        await asyncio.sleep(0.1)
        assert ran == [] and pool.pending == 0

    pool = Pool(workers=1, queue=1)
    asyncio.run(queued_then_timed_out())

    async def places():  # each waiting request knows how many wait before it; a cancelled one leaves the line
        gate.clear()
        pool = Pool(workers=1, queue=3)
        running = asyncio.ensure_future(pool.run(gate.wait, 5, "a"))
        await asyncio.sleep(0.05)
        b = asyncio.ensure_future(pool.run(lambda: "b", 5, "b"))
        c = asyncio.ensure_future(pool.run(lambda: "c", 0.3, "c"))
        d = asyncio.ensure_future(pool.run(lambda: "d", 5, "d"))
        await asyncio.sleep(0.05)
        assert [pool.place(k) for k in "abcdx"] == [None, 0, 1, 2, None]  # a runs; x was never asked
        with pytest.raises(TimeoutError):
            await c  # c gives up while it waits
        await asyncio.sleep(0.05)
        assert [pool.place(k) for k in "bcd"] == [0, None, 1]
        gate.set()
        assert [await running, await b, await d] == [True, "b", "d"] and pool.pending == 0
        assert [pool.place(k) for k in "abcd"] == [None] * 4

    asyncio.run(places())
    client = TestClient(create_app(*loaded))
    assert client.get("/api/health", params={"request": "x"}).json()["ahead"] is None
    assert "ahead" not in client.get("/api/health").json()
    slow = TestClient(create_app(*loaded, workers=1, queue=0, timeout=0.001))
    r = slow.post("/api/poems", json={"form": "qilv", "n": 20})
    assert r.status_code == 504 and "took longer than 0.001 s" in r.json()["error"]


# ---------------------------------------------------------------------------- the page in a real browser
def _serve(tmp_path):
    """A real `tangshi serve` on a free loopback port; returns (process, base URL)."""
    log = tmp_path / "serve.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "tangshi", "serve", "--port", "0"], stderr=open(log, "w"), stdout=subprocess.DEVNULL
    )
    for _ in range(300):
        m = re.search(r"http://127\.0\.0\.1:(\d+)/", log.read_text())
        if m:
            return proc, f"http://127.0.0.1:{m.group(1)}"
        if proc.poll() is not None:
            raise AssertionError(f"tangshi serve exited: {log.read_text()}")
        time.sleep(0.1)
    proc.kill()
    raise AssertionError("tangshi serve did not start in 30 s")


def test_page_in_chromium(tmp_path):
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing in CI; .ci/run installs the chromium package")
        pytest.skip(f"Debian's Chromium is not installed ({CHROMIUM}); apt-get install chromium")
    from playwright.sync_api import sync_playwright

    proc, base = _serve(tmp_path)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM,
                args=[
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-background-networking",
                ],
            )
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(base + "/")
            page.wait_for_selector("body[data-ready=true]")
            # a reader's page: Chinese first, a Tang form by default, the rest folded under 更多
            assert page.input_value("#form") == "qijue" and "體裁" in page.text_content("label[for=form]")
            assert page.is_visible("#acrostic") and not page.is_visible("#seed")
            assert page.is_visible("#title") and "題目" in page.text_content("label[for=title]")
            page.fill("#title", "送友人")  # a poem on a subject
            page.click("#more summary")
            page.fill("#acrostic", "春夏秋冬")
            page.fill("#seed", "1")
            page.click("#write")
            page.wait_for_selector(".poem .line")
            lines = page.eval_on_selector_all(".poem .line", "els => els.map(e => e.dataset.text)")
            assert len(lines) == 4 and [ln[0] for ln in lines] == list("春夏秋冬"), lines
            assert all(len(ln) == 8 for ln in lines)
            assert page.locator(".ch.rhyme").count() == 2  # lines 2 and 4 end in their rhyme
            assert "acrostic=" in page.url and "seed=1" in page.url  # the link reproduces the poem
            meta = page.text_content(".poem .meta")
            assert "韻部" in meta and "首句" in meta and "平仄合律" in meta, meta  # the meta line in words
            assert page.text_content(".poem .title") == "送友人" and "title=" in page.url  # the title above the poem

            # 改 on line 3 writes it again: the other lines stay, and so does its hidden character
            page.click(".poem .line[data-k='2'] .redo")
            page.wait_for_selector("#poems:not(.stale)")
            again = page.eval_on_selector_all(".poem .line", "els => els.map(e => e.dataset.text)")
            assert [again[0], again[1], again[3]] == [lines[0], lines[1], lines[3]] and again[2][0] == "秋", again
            assert "模型把握" in page.text_content(".poem .meta")  # ranked among 8: its score, in words
            assert page.text_content(".poem .title") == "送友人"  # written again on the same title
            # a locked character survives 重寫其餘, which writes every other one again
            page.click(".poem .line[data-k='0'] .ch:nth-child(3)")
            locked = page.text_content(".poem .line[data-k='0'] .ch.locked:nth-child(3) .char")
            page.click(".poem .rest")
            page.wait_for_selector("#poems:not(.stale)")
            rest = page.eval_on_selector_all(".poem .line", "els => els.map(e => e.dataset.text)")
            assert rest[0][2] == locked and [ln[0] for ln in rest] == list("春夏秋冬"), rest

            # double-click a character to change it: it stays as typed, its line is written around it
            page.once("dialog", lambda d: d.accept("月"))
            before = page.eval_on_selector_all(".poem .line", "els => els.map(e => e.dataset.text)")
            page.dblclick(".poem .line[data-k='1'] .ch:nth-child(4)")
            page.wait_for_function(
                "b => { const l = [...document.querySelectorAll('.poem .line')].map(e => e.dataset.text);"
                " return l[1][3] === '月' && l[0] === b[0] && l[2] === b[2] && l[3] === b[3]; }",
                arg=before,
            )
            page.evaluate("navigator.clipboard.writeText = (t) => { window.__copied = t; return Promise.resolve(); }")
            page.click("#copy")  # copied: the lines, the meta line in words, and where it came from
            copied = page.wait_for_function("() => window.__copied").json_value()
            first = page.eval_on_selector(".poem .line", "e => e.dataset.text")
            assert copied.startswith("《送友人》\n" + first), copied
            assert "韻部" in copied and copied.rstrip().endswith("tangshi")
            page.click("#share")  # the first poem as a picture drawn in the browser
            assert page.get_attribute("#png", "href").startswith("data:image/png;base64,")

            page.check("input[name=script][value=simplified]")
            page.click("#write")
            want = [to_simplified(ln) for ln in lines]
            page.wait_for_function(
                "w => [...document.querySelectorAll('.poem .line')].map(e => e.dataset.text).join('|') === w",
                arg="|".join(want),
            )
            assert "script=simplified" in page.url
            simplified = page.eval_on_selector_all(".poem .line", "els => els.map(e => e.dataset.text)")
            assert simplified == [to_simplified(ln) for ln in lines] != lines  # the same poem, simplified

            page.check("#show-tones")
            page.check("#vertical")
            assert page.locator("#out.vertical.show-tones").count() == 1
            page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
            if os.environ.get("TANGSHI_SCREENSHOT"):
                shutil.copy(tmp_path / "page.png", SCREENSHOT)

            page.fill("#acrostic", "春夏秋")
            page.click("#write")
            page.wait_for_selector("#error-acrostic:not(:empty)")
            assert "has 3 characters but a 七言絕句 has 4 lines" in page.text_content("#error-acrostic")
            assert page.get_attribute("#acrostic", "aria-invalid") == "true"
            assert page.evaluate("document.activeElement.id") == "acrostic"  # the focus goes to the field at fault
            page.keyboard.press("End")
            page.keyboard.type("冬")
            page.keyboard.press("Enter")  # by keyboard: Enter in a field writes again
            page.wait_for_selector("#error-acrostic:empty", state="attached")
            page.wait_for_function("() => document.querySelector('#acrostic').getAttribute('aria-invalid') === null")
            page.fill("#at", "9")
            page.click("#write")
            page.wait_for_selector("#error-at:not(:empty)")
            assert "--" not in page.text_content("#error-at") and "「藏字位置」" in page.text_content("#error-at")
            page.fill("#at", "1")
            page.fill("#title", "送友人。")  # the server's refusal, beside the field it is about
            page.click("#write")
            page.wait_for_selector("#error-title:not(:empty)")
            assert "title" in page.text_content("#error-title") and page.text_content("#error-at") == ""

            for layout in ("", "&vertical=1"):  # a 七律 on a 390 px phone, in both layouts
                phone = browser.new_page(viewport={"width": 390, "height": 800})
                phone.goto(base + "/?mode=poems&form=qilv&seed=3")  # a link runs its request
                phone.wait_for_selector(".poem .line")
                if layout:
                    phone.check("#vertical")
                width = phone.evaluate("document.documentElement.scrollWidth")
                assert width <= 390, f"the page is {width} px wide on a 390 px phone ({layout or 'horizontal'})"
                if layout and os.environ.get("TANGSHI_SCREENSHOT"):
                    phone.screenshot(path=str(SCREENSHOT.with_name("serve-phone.png")), full_page=True)
            browser.close()
    finally:
        proc.send_signal(signal.SIGINT)  # Ctrl-C stops it cleanly: exit 0, one line, no traceback
        assert proc.wait(15) == 0
        err = (tmp_path / "serve.log").read_text()
        assert err.rstrip().endswith("tangshi serve: stopped") and "Traceback" not in err, err


def test_serve_command_refusals_and_warning(capsys, monkeypatch, tmp_path):
    import socket

    import uvicorn

    assert main(["serve", "--checkpoint", str(tmp_path / "none")]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        assert main(["serve", "--port", str(taken.getsockname()[1])]) == 2
        err = capsys.readouterr().err
        assert "cannot listen on 127.0.0.1:" in err and err.count("\n") == 1
    finally:
        taken.close()
    assert main(["serve", "--port", "70000"]) == 2 and "--port" in capsys.readouterr().err
    ran = []
    monkeypatch.setattr(uvicorn.Server, "run", lambda self, sockets: ran.append(sockets[0].getsockname()))
    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 0
    err = capsys.readouterr().err
    assert ran and err.startswith("warning: listening on 0.0.0.0, reachable from other machines")
    assert main(["serve", "--port", "0"]) == 0 and "warning" not in capsys.readouterr().err


@pytest.mark.parametrize(
    "body, headers, status, words",
    [
        (b'{"form": "qijue", "start": "\xff"}', {"content-type": "application/json"}, 400, "UTF-8 text (byte 29 is"),
        (b"[" * 5000 + b"]" * 5000, {"content-type": "application/json"}, 400, "nested too deeply"),
        (b'{"form": "qijue"}', {"content-type": "application/json; charset=latin-1"}, 415, "charset=latin-1"),
        (b'{"form": "qijue"}', {"content-type": "text/plain"}, 415, "must be sent as application/json, got text/plain"),
        (b'{"start": "\\ud800"}', {"content-type": "application/json"}, 422, "start"),
    ],
)
def test_bodies_that_cannot_be_read_say_why(client, body, headers, status, words):
    """Hostile bodies: invalid UTF-8, a 5,000-deep array, another charset, a JSON object sent as
    text, a lone surrogate in a field: each one line in the one shape, saying what was wrong."""
    r = client.post("/api/poems", content=body, headers=headers)
    assert r.status_code == status and set(r.json()) == {"error", "field"}, r.text
    assert words in r.json()["error"] or r.json()["field"] == words, r.text
