"""`tangshi serve`: the web page and its JSON API (FastAPI on uvicorn).

The model is loaded once. Requests take the command line's options by their long names (the
pydantic request models are built from the fields of `PoemRequest` / `CoupletRequest`, as the
command line's options are, so the two cannot drift apart) and get exactly the JSON `tangshi generate --json` /
`tangshi couplet --json` prints. The decoding options validate themselves: a request they refuse
gets HTTP 400 with `{"error": "<the CLI's one-line message>"}`; one that is malformed (not JSON,
an unknown field, a wrong type, `n` over the limit) gets 422 with one line too.

Limits, so that one user cannot starve the others: a request body of at most MAX_BODY bytes,
`n` ≤ MAX_N and `n · candidates` ≤ MAX_SAMPLES; generation runs in a pool of `workers` threads
(one torch thread each) with at most `queue` requests waiting, and a full queue answers 503; a
request that takes longer than `timeout` seconds answers 504 (its worker finishes the poems and
is then free again: torch cannot be interrupted mid-step). Nothing in a request names a file.
"""

import asyncio
import contextlib
import functools
import json
import os
import re
import socket
import sys
from importlib import resources
from typing import Any, Literal

import torch
from fastapi import FastAPI, Header, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, create_model
from starlette.exceptions import HTTPException as StarletteHTTPException

from tangshi.api import Poet, load
from tangshi.decode.constraints.rhyme import rhyme_groups_known
from tangshi.decode.request import CoupletRequest, PoemRequest, base_type, web_fields
from tangshi.errors import TangshiError, check_number, one_line
from tangshi.serve.pool import Busy, Pool
from tangshi.text import FORM_NAMES
from tangshi.verse import prosody

MAX_BODY = 16 * 1024
MAX_N = 50
MAX_SAMPLES = 400  # n · candidates
MAX_TEXT = 200  # characters in a text field
DEFAULT_TIMEOUT = 60.0
WEB_FILES = ("index.html", "app.js", "style.css")

# which field a refusal names, read off the CLI's message (the page shows it beside that field);
# an option's name must end there (--n is not --no-rhyme)
_FIELDS = tuple(
    (re.compile(pattern), name)
    for pattern, name in (
        (r"--at\b", "at"),
        (r"--n\b", "n"),
        (r"--candidates\b", "candidates"),
        (r"--temperature\b", "temperature"),
        (r"--top-p\b", "top_p"),
        (r"--top-k\b", "top_k"),
        (r"--beam\b", "beam"),
        (r"--seed\b", "seed"),
        (r"--strategy\b", "strategy"),  # before the rhyme group: "--strategy original … takes no … rhyme group"
        (r"--parallel\b", "parallel"),
        (r"--title\b|^a title\b|in the title\b", "title"),
        (r"--revise\b", "revise"),
        (r"--template\b|^template\b|the template\b|in the template", "template"),
        (r"--rhyme-group\b|rhyme group", "rhyme_group"),
        (r"^acrostic|the acrostic", "acrostic"),
        (r"^keywords?\b", "keywords"),
        (r"start text", "start"),
        (r"上联", "first"),
        (r"^unknown tone|tone mode", "tone"),
        (r"^unknown form", "form"),
        (r"script", "script"),
    )
)


def field_of(message: str) -> str | None:
    for pattern, name in _FIELDS:
        if pattern.search(message):
            return name
    return None


def _request_model(name: str, cls):
    """A pydantic model with one field per web field of the request class `cls`: its name, its
    type, its choices, its default and its help, all read off the dataclass."""

    fields: dict[str, Any] = {}
    for f, kind in web_fields(cls):
        meta, base = f.metadata, base_type(kind)
        default = ... if meta.get("positional") else f.default
        if meta.get("choices"):
            choice = Literal[(*meta["choices"], *meta.get("aliases", {}))]  # type: ignore[valid-type]
            kind = choice | None if f.default is None else choice
        limits: dict[str, Any] = {}
        if f.name == "n":
            limits = {"ge": 1, "le": MAX_N}
        elif f.name == "candidates":
            limits = {"ge": 1, "le": MAX_SAMPLES}
        elif base is str:
            limits = {"max_length": MAX_TEXT}
        fields[f.name] = (kind, Field(default, description=meta["help"].format(what=cls.WHAT), **limits))
    # strict: "2" is not a number and "yes" not a boolean (JSON has its own types); null is "not given"
    return create_model(name, __config__=ConfigDict(extra="forbid", strict=True), **fields)


def _request(cls, body):
    """The request a validated body holds (a field sent as null takes its default)."""
    return cls(**{k: v for k, v in body.model_dump().items() if v is not None})


class Answer(BaseModel):  # the record `tangshi generate --json` prints (the poems' fields vary by form)
    model_config = ConfigDict(extra="allow")
    poems: list[dict]
    form: str
    strategy: str
    seed: int
    script: str


class CoupletAnswer(BaseModel):  # the record `tangshi couplet --json` prints
    model_config = ConfigDict(extra="allow")
    couplets: list[dict]
    first: str
    strategy: str
    seed: int
    script: str
    tone: str


class Error(BaseModel):
    error: str
    field: str | None = None


def _error(status: int, message: str, field: str | None = None) -> JSONResponse:
    """Every error the server sends: {"error": one line, "field": the request field it is about, or null}."""
    return JSONResponse({"error": one_line(message), "field": field}, status_code=status)


async def _http_error(request, exc: Exception) -> JSONResponse:
    """404, 405, a body that cannot be parsed ...: the same shape as every other error."""
    assert isinstance(exc, StarletteHTTPException)  # registered for that class only
    detail = exc.detail if isinstance(exc.detail, str) else "the request was refused"
    if exc.status_code == 404:
        detail = f"no such page or endpoint: {request.url.path}"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    return _error(exc.status_code, detail)


async def _invalid(request, exc: Exception) -> JSONResponse:
    """A malformed request (pydantic's errors): 422 and one line naming the first problem."""
    assert isinstance(exc, RequestValidationError)  # registered for that class only
    first = exc.errors()[0]
    loc = [str(x) for x in first.get("loc", ()) if x != "body"]
    msg = first.get("msg", "invalid request")
    if first.get("type") == "json_invalid":
        return _error(422, f"the request body is not valid JSON: {first.get('ctx', {}).get('error', msg)}")
    if first.get("type") == "extra_forbidden":
        return _error(422, f"unknown field '{'.'.join(loc)}'", loc[0] if loc else None)
    if first.get("type") == "model_attributes_type":
        return _error(422, "the request body must be a JSON object of options")
    return _error(422, f"{'.'.join(loc) or 'body'}: {msg}", loc[0] if loc else None)


@functools.cache
def _web_file(name: str) -> str:
    return resources.files("tangshi.serve").joinpath("web", name).read_text(encoding="utf-8")


REVISE_CANDIDATES = 8  # /api/revise ranks this many versions unless told otherwise


def create_app(
    model, vocab, *, workers: int | None = None, queue: int = 32, timeout: float = DEFAULT_TIMEOUT, checkpoint: str = ""
):
    """The FastAPI application for a loaded model."""

    torch.set_num_threads(1)  # one thread per request: the pool gives the parallelism
    pool = Pool(workers or os.cpu_count() or 1, queue)
    poet = Poet(model, vocab)
    PoemsBody = _request_model("PoemsRequest", PoemRequest)
    CoupletBody = _request_model("CoupletRequest", CoupletRequest)

    app = FastAPI(
        title="tangshi",
        description="Classical Chinese poems from a character-level LSTM.",
        docs_url=None,
        redoc_url=None,
    )  # Swagger UI would load from a CDN; /openapi.json stays
    app.state.pool = pool

    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http_error)

    async def ask(body, cls, key: str, ticket: str | None = None):
        """Decode one request in the pool: {key: [records], **header}, as the command's --json.
        `ticket`: the page's name for the request (header X-Tangshi-Request), for its place in the queue."""
        samples = body.n * (body.candidates or 1)
        if samples > MAX_SAMPLES:
            return _error(422, f"n × candidates must be at most {MAX_SAMPLES}, got {samples}", "candidates")

        def work():
            stream, header = poet.records(_request(cls, body))
            return {key: list(stream), **header}

        try:
            return JSONResponse(await pool.run(work, timeout, ticket))
        except Busy as e:
            return _error(503, str(e))
        except TimeoutError:
            return _error(504, f"the request took longer than {timeout:g} s; ask for fewer poems")
        except asyncio.CancelledError:  # the server is shutting down (Ctrl-C) while this one decodes
            return _error(503, "the server is stopping")
        except TangshiError as e:
            return _error(400, str(e), field_of(str(e)))

    failures: dict[int | str, dict[str, Any]] = {status: {"model": Error} for status in (400, 422, 503, 504)}

    @app.post("/api/poems", response_model=Answer, responses=failures)
    async def api_poems(body: PoemsBody, x_tangshi_request: str | None = Header(None, max_length=64)):  # type: ignore[valid-type]
        """Poems: the fields are `tangshi generate`'s options by long name; the answer is its --json."""
        return await ask(body, PoemRequest, "poems", x_tangshi_request)

    _add_revise(app, ask, PoemsBody, failures)

    @app.post("/api/couplet", response_model=CoupletAnswer, responses=failures)
    async def api_couplet(body: CoupletBody, x_tangshi_request: str | None = Header(None, max_length=64)):  # type: ignore[valid-type]
        """下联 for a 上联: `tangshi couplet`'s options; the answer is its --json."""
        return await ask(body, CoupletRequest, "couplets", x_tangshi_request)

    _describe(app, vocab, pool, checkpoint, PoemsBody, CoupletBody)
    return BodyLimit(app, MAX_BODY)


def _add_revise(app, ask, PoemsBody, failures) -> None:
    @app.post("/api/revise", response_model=Answer, responses=failures)
    async def api_revise(body: PoemsBody, x_tangshi_request: str | None = Header(None, max_length=64)):
        """A poem with some lines written again: `template` the whole poem, `revise` the line numbers
        ("3" or "3,4"), `candidates` how many versions to rank by the whole poem's score (default 8)."""
        if body.template is None or body.revise is None:
            return _error(422, "a revision needs the poem (template) and the lines to write again (revise)", "revise")
        if body.candidates is None:
            body = body.model_copy(update={"candidates": REVISE_CANDIDATES})
        return await ask(body, PoemRequest, "poems", x_tangshi_request)


def _describe(app, vocab, pool: Pool, checkpoint: str, PoemsRequest, CoupletRequest) -> None:
    """The routes that describe rather than decode: the page's controls, the rhyme groups, the
    tones of a text, health, and the page itself."""

    @app.get("/api/forms")
    def api_forms():
        """What the page needs to build its controls: forms, choices, defaults and limits."""
        forms = [
            {"name": f.name, "label": f.label, "lines": f.lines, "chars_per_line": f.chars_per_line}
            for f in prosody.FORMS.values()
        ] + [{"name": "free", "label": "自由", "lines": None, "chars_per_line": None}]
        assert [f["name"] for f in forms] == list(FORM_NAMES)
        return {
            "forms": forms,
            "poems": PoemsRequest.model_json_schema()["properties"],
            "couplet": CoupletRequest.model_json_schema()["properties"],
            "limits": {"n": MAX_N, "samples": MAX_SAMPLES, "text": MAX_TEXT, "body_bytes": MAX_BODY},
        }

    @app.get("/api/rhyme-groups")
    def api_rhyme_groups():
        """The 平水韻 平聲 groups with how many of their characters the model knows."""
        return {"groups": rhyme_groups_known(vocab)}

    @app.get("/api/tones")
    def api_tones(text: str = ""):
        """The tones of each character of `text` ('平', '仄', '平仄' for a 多音字, '' if unknown)."""
        if len(text) > 4 * MAX_TEXT:
            return _error(422, f"text: at most {4 * MAX_TEXT} characters")
        return {"tones": ["".join(t for t in (prosody.PING, prosody.ZE) if t in prosody.tones(ch)) for ch in text]}

    @app.get("/api/health")
    def api_health(request: str | None = Query(None, max_length=64)):
        """The server's state; with `request` (a page's X-Tangshi-Request), that request's place: how many
        wait before it (0: next), or null once it runs."""
        out = {
            "status": "ok",
            "checkpoint": checkpoint,
            "vocabulary": len(vocab),
            "workers": pool.workers,
            "queue": pool.queue,
            "pending": pool.pending,  # requests running or waiting now
        }
        if request is not None:
            out["ahead"] = pool.place(request)
        return out

    pages = {"index.html": "text/html", "app.js": "text/javascript", "style.css": "text/css"}

    @app.get("/", include_in_schema=False)
    def index():
        return HTMLResponse(_web_file("index.html"))

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str):
        if name not in pages:
            return _error(404, f"no such file: {name}")
        return Response(_web_file(name), media_type=pages[name] + "; charset=utf-8")


class BodyLimit:
    """ASGI middleware: a request body over `limit` bytes gets 413 with one line, before it is
    parsed (by its Content-Length, or as it streams in without one)."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    def __getattr__(self, name):  # app.state, routes ... of the wrapped application
        return getattr(self.app, name)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope.get("headers") or []).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.limit):
            return await self._refuse(send)
        messages, seen = [], 0  # bodies are small: read the whole body first, then hand it on
        while True:
            message = await receive()
            messages.append(message)
            seen += len(message.get("body", b""))
            if seen > self.limit:
                return await self._refuse(send)
            if message["type"] != "http.request" or not message.get("more_body"):
                break

        if scope.get("method") == "POST":
            problem = body_problem(dict(scope.get("headers") or []), b"".join(m.get("body", b"") for m in messages))
            if problem is not None:
                return await self._refuse(send, *problem)

        async def replay():
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send, status: int = 413, message: str | None = None):
        message = message or f"the request body is larger than {self.limit} bytes"
        body = json.dumps({"error": message, "field": None}, ensure_ascii=False).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})


def body_problem(headers: dict[bytes, bytes], body: bytes) -> tuple[int, str] | None:
    """What is wrong with a POST body before it is parsed, in words: not sent as JSON (415), in a
    charset other than UTF-8 (415), not UTF-8 (400), or nested too deeply to parse (400)."""
    ctype = headers.get(b"content-type", b"").decode("latin-1")
    kind, _, params = ctype.partition(";")
    if kind.strip().lower() != "application/json":
        return 415, f"the request body must be sent as application/json, got {kind.strip() or 'no content type'}"
    charset = next(
        (
            v.strip().strip('"')
            for k, _, v in (p.partition("=") for p in params.split(";"))
            if k.strip().lower() == "charset"
        ),
        "utf-8",
    )
    if charset.lower() not in ("utf-8", "utf8"):
        return 415, f"the request body must be UTF-8 JSON, but its content type says charset={charset}"
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as e:
        return 400, f"the request body is not UTF-8 text (byte {e.start + 1} is invalid)"
    try:
        json.loads(text)
    except RecursionError:
        return 400, "the request body is nested too deeply to be a JSON object of options"
    except ValueError:
        return None  # malformed JSON: the request model says where (422)
    return None


def serve(
    checkpoint: str | None, host: str, port: int, workers: int | None, queue: int, timeout: float, log=print
) -> None:
    """Load the model, bind, and serve until Ctrl-C (uvicorn stops cleanly on SIGINT/SIGTERM)."""

    import uvicorn

    check_number("--port", port, 0, 65535, integer=True)
    check_number("--queue", queue, 0, 10_000, integer=True)
    check_number("--timeout", timeout, 0, 86_400, lo_open=True)
    if workers is not None:
        check_number("--workers", workers, 1, 1024, integer=True)
    poet = load(checkpoint)
    app = create_app(
        poet.model, poet.vocab, workers=workers, queue=queue, timeout=timeout, checkpoint=str(poet.checkpoint)
    )
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise TangshiError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    sock.listen(128)
    bound = sock.getsockname()[1]
    if host not in ("127.0.0.1", "localhost", "::1"):
        log(f"warning: listening on {host}, reachable from other machines; tangshi serve has no authentication")
    log(
        f"tangshi serve: http://{'[' + host + ']' if ':' in host else host}:{bound}/ "
        f"({app.state.pool.workers} workers, queue {queue}); Ctrl-C stops it",
        flush=True,
    )
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=2)
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C stops a server; uvicorn has shut down and re-raises it
        uvicorn.Server(config).run(sockets=[sock])
    pool = app.state.pool
    dropped = pool.pending
    pool.stop()
    log(
        "tangshi serve: stopped" + (f" ({dropped} request(s) still decoding were dropped)" if dropped else ""),
        flush=True,
    )
    if dropped:  # a worker thread inside torch cannot be stopped; exit without waiting for it
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)
