"""`rnnzoo serve checkpoint=PATH`: one checkpoint behind an HTTP JSON API, and a page.

    GET  /health         {"status": "ok"}: answered on the event loop, never behind the model
    GET  /info           task, model config, vocabulary sizes, the checkpoint's metrics, limits
    POST /api/predict    {"text": ..., task options..., "inside": false} -> {"task", "answer", "views"[, "inside"]}
    GET  /               the page (static/index.html, app.js, style.css: no build step, no CDN)

The model runs in a pool of `workers_threads` threads (torch with `trainer.num_threads` each),
never on the event loop, so a long generation delays only itself. Every refusal is a JSON
`{"error": "..."}` naming the field and the limit: 413 for a body over `max_request_bytes`,
400 for malformed JSON, 422 for wrong types, unknown fields, empty input, too many input or
generated tokens, 404/405 for other paths and methods. Anything unexpected is a JSON 500 with
its message, and the server goes on. docs/serve.md has examples.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException

from ..errors import RnnzooError
from ..run_config import plain
from .model import RequestError, ServedModel

log = logging.getLogger("rnnzoo")

STATIC = Path(__file__).parent / "static"


class SafeJSON(JSONResponse):
    """JSON whose NaN and infinities (a diverged model's numbers) are written as null: bare NaN is not JSON."""

    def render(self, content: Any) -> bytes:
        try:
            return json.dumps(content, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
        except ValueError:
            return json.dumps(_finite(content), ensure_ascii=False, separators=(",", ":")).encode()


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def error(status: int, message: str) -> SafeJSON:
    return SafeJSON({"error": message}, status_code=status)


def create_app(served: ServedModel, max_request_bytes: int, workers_threads: int = 1) -> FastAPI:
    """The FastAPI application around a loaded model (tests build one without a network socket)."""
    app = FastAPI(title="rnnzoo serve", docs_url=None, redoc_url=None, openapi_url=None)
    pool = ThreadPoolExecutor(max_workers=workers_threads, thread_name_prefix="rnnzoo-model")

    @app.get("/health")
    async def health() -> SafeJSON:
        return SafeJSON({"status": "ok", "task": served.task_name})

    @app.get("/info")
    async def info() -> SafeJSON:
        return SafeJSON(served.info)

    @app.post("/api/predict")
    async def predict(request: Request) -> SafeJSON:
        body = await read_body(request, max_request_bytes)
        try:
            decoded = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError) as bad:
            raise RequestError(400, f"the body is not valid JSON: {bad}") from None
        ask = served.parse(decoded)
        return SafeJSON(await asyncio.get_running_loop().run_in_executor(pool, served.answer, ask))

    @app.get("/")
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(RequestError)
    async def refused(_request: Request, exc: RequestError) -> SafeJSON:
        return error(exc.status, str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(_request: Request, exc: HTTPException) -> SafeJSON:
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception) -> SafeJSON:
        log.exception("request failed")
        return error(500, f"internal error: {type(exc).__name__}: {exc}")

    app.router.on_shutdown.append(lambda: pool.shutdown(wait=False, cancel_futures=True))
    return app


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 once it passes `limit` bytes (declared or sent)."""
    too_big = RequestError(413, f"the request body is over this server's limit of {limit:,} bytes (max_request_bytes)")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_big
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_big
    return bytes(body)


def serve(cfg: Any) -> None:
    """`rnnzoo serve`: load the checkpoint (a bad one is an RnnzooError before any socket opens), then run uvicorn."""
    import uvicorn

    config = plain(cfg)
    check_options(config)
    check_address(str(config["host"]), int(config["port"]))
    served = ServedModel(config)
    app = create_app(served, int(config["max_request_bytes"]), int(config["workers_threads"]))
    print(f"serving the {served.task_name} checkpoint {config['checkpoint']} on http://{config['host']}:{config['port']}/"
          " (Ctrl-C stops)", flush=True)
    uvicorn.run(app, host=config["host"], port=int(config["port"]), log_level="warning", access_log=False)


# the options of configs/serve.yaml that are counts, and their ranges
OPTION_RANGES = {"port": (1, 65535), "workers_threads": (1, 256), "max_request_bytes": (1, None),
                 "max_input_tokens": (1, None), "max_new_tokens": (1, None)}


def check_options(config: dict[str, Any]) -> None:
    """Each count option an integer in its range, else one RnnzooError naming it (before anything loads)."""
    for key, (low, high) in OPTION_RANGES.items():
        value = config.get(key)
        if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
            allowed = f"an integer from {low} to {high}" if high is not None else f"an integer >= {low}"
            raise RnnzooError(f"{key}={value!r}: must be {allowed}")


def check_address(host: str, port: int) -> None:
    """Refuse an address this server cannot listen on (taken, not this machine's, not allowed) with one
    line, before the checkpoint loads; uvicorn would print a traceback."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind((host, port))
    except OSError as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise RnnzooError(f"cannot serve on {host}:{port}: {reason} (another server on that port? choose "
                          "another with port=N, or host=)") from None
