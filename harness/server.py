"""The live page's server: `python live.py` serves plots/live.html and a JSON API on 127.0.0.1
while a session (harness/live.py) trains in a thread of its own.

    GET  /              the page
    GET  /api/state     the session: settings, status, epoch, each run's last epoch, the history
    GET  /api/events    the same as a stream of Server-Sent Events, one at each change
    POST /api/control   {"action": "play" | "pause" | "step" | "reset" | "save" | "set",
                         "set": {setting: value, ...}, "name": a saved run's name}
    POST /api/data      {"points": [[x, y], ...]} (drawn) or {"name": FILE, "content": BASE64}

A mistake (an unknown action or setting, a value out of range, a malformed body, points that
--data would refuse) is HTTP 400 with {"error": one line}; the server and the session go on.
Only these paths are served, and files are written only in the session's own folder and, on
save, in new folders under --root.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import math
import sys
import threading
import time
import webbrowser
from contextlib import redirect_stdout
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from data.points import READERS, load_points
from errors import UserError
from harness import endings, live
from harness.cli import exit_status, strict_parser
from harness.flags import VARIANTS

PAGE = Path(__file__).resolve().parents[1] / "plots" / "live.html"
LOCAL = ("127.0.0.1", "localhost", "::1")
MOST_BYTES = 20_000_000  # the largest body a request may send
KEEP_ALIVE_S = 15.0  # a stream says it is alive this often when nothing changes


def finite(value):
    """A value as JSON can hold it: NaN and infinities (a reverse KL of no points) as null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(v) for v in value]
    return value


def received_points(session: live.Session, body: dict) -> tuple[str, Path]:
    """Points the page sent, written into the session's folder and read as --data reads a file
    (its one-line errors), and split as the session's runs would split them."""
    stamp = time.monotonic_ns()
    if "points" in body:
        kind = "drawn"
        path = session.place["folder"] / f"drawn_{stamp}.csv"
        write_drawn(body["points"], path)
        shown = "the drawing"
    elif isinstance(body.get("name"), str) and "content" in body:
        kind = "upload"
        suffix = Path(body["name"]).suffix.lower()
        if suffix not in READERS:
            formats = ", ".join(READERS)
            raise UserError(f"{Path(body['name']).name}: cannot read '{suffix}' files: {formats}")
        path = session.place["folder"] / f"upload_{stamp}{suffix}"
        path.write_bytes(decoded(body["content"]))
        shown = Path(body["name"]).name
    else:
        raise UserError('send {"points": [[x, y], ...]} or {"name": FILE, "content": BASE64}')
    try:
        with redirect_stdout(StringIO()):
            load_points(str(path), None, None)
            files = {**session.place["files"], kind: path}
            live.checked(session.settings, {"data": kind}, {**session.place, "files": files})
    except UserError as e:
        path.unlink(missing_ok=True)
        raise UserError(str(e).replace(str(path), shown)) from None
    return kind, path


def write_drawn(points, path: Path) -> None:
    """Drawn points, N × 2 numbers, as a CSV file."""
    try:
        array = np.array(points, dtype=float)
    except (TypeError, ValueError):
        array = np.zeros((0, 0))
    if array.ndim != 2 or array.shape[1] != 2 or len(array) > live.MOST_POINTS:
        raise UserError(f"drawn points must be up to {live.MOST_POINTS} [x, y] pairs of numbers")
    np.savetxt(path, array, delimiter=",", header="x,y", comments="")


def decoded(content) -> bytes:
    try:
        return base64.b64decode(content, validate=True)
    except (binascii.Error, TypeError, ValueError):
        raise UserError("an uploaded file's content must be base64") from None


def control(session: live.Session, body: dict) -> dict:
    """POST /api/control: an action (settings checked here, before the session takes them)."""
    action = body.get("action", "set" if "set" in body else None)
    if action not in live.ACTIONS or action == "data":
        actions = ", ".join(a for a in live.ACTIONS if a != "data")
        raise UserError(f"no action {action!r}: the actions are {actions}")
    changes = body.get("set") or {}
    if not isinstance(changes, dict) or action == "set" and not changes:
        raise UserError('"set" takes {setting: value, ...}')
    if changes:
        new = live.checked(session.settings, changes, session.place)
        answer = live.ask(session, "set", new)
        if action == "set" or "error" in answer:
            return answer
    return live.ask(session, action, body.get("name"))


class Handler(BaseHTTPRequestHandler):
    """The page, the state, the stream of changes and the two commands; nothing else."""

    session: live.Session  # set by serve_page on a subclass
    stop: threading.Event

    def do_GET(self) -> None:
        route = urlsplit(self.path).path
        if route == "/":
            self.answer(HTTPStatus.OK, PAGE.read_bytes(), "text/html; charset=utf-8")
        elif route == "/api/state":
            self.answer_json(HTTPStatus.OK, live.state(self.session))
        elif route == "/api/events":
            self.stream()
        else:
            self.answer_json(HTTPStatus.NOT_FOUND, {"error": f"no page {route}"})

    def do_POST(self) -> None:
        route = urlsplit(self.path).path
        actions = {"/api/control": control, "/api/data": self.data}
        if route not in actions:
            self.answer_json(HTTPStatus.NOT_FOUND, {"error": f"no page {route}"})
            return
        try:
            answer = actions[route](self.session, self.body())
        except UserError as e:
            answer = {"error": str(e)}
        status = HTTPStatus.BAD_REQUEST if "error" in answer else HTTPStatus.OK
        self.answer_json(status, {**answer, "state": live.state(self.session, views=False)})

    def data(self, session: live.Session, body: dict) -> dict:
        return live.ask(session, "data", received_points(session, body))

    def body(self) -> dict:
        """The request's JSON object; a one-line UserError where it is none."""
        length = int(self.headers.get("Content-Length") or 0)
        if length > MOST_BYTES:
            raise UserError(f"a request may send up to {MOST_BYTES:,} bytes")
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except (ValueError, UnicodeDecodeError):
            raise UserError("the request's body is not JSON") from None
        if not isinstance(body, dict):
            raise UserError("the request's body is a JSON object")
        return body

    def answer(self, status: int, content: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(content)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(content)

    def answer_json(self, status: int, value: dict) -> None:
        content = json.dumps(finite(value), allow_nan=False).encode()
        self.answer(status, content, "application/json")

    def stream(self) -> None:
        """Server-Sent Events: the state at once, then at every change, until the page goes."""
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        seen = -1
        sent = (0, 0)  # the history this stream has sent: (runs' start, rows), each row once
        session = self.session
        try:
            while not self.stop.is_set():
                with session.lock:
                    session.lock.wait_for(lambda last=seen: session.version != last, KEEP_ALIVE_S)
                    changed = session.version != seen
                    seen = session.version
                    since = sent[1] if sent[0] == session.starts else 0  # runs started anew
                    now = live.state(session, since=since) if changed else None
                    sent = (session.starts, len(session.history))
                event = f"data: {json.dumps(finite(now))}\n\n" if now else ": alive\n\n"
                self.wfile.write(event.encode())
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            return

    def log_message(self, *_) -> None:  # the console stays the session's
        return


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = strict_parser(prog="python live.py", description=__doc__.splitlines()[0])
    p.add_argument("--port", type=int, default=0, help="the port (default: a free one)")
    p.add_argument("--host", default="127.0.0.1", help="where to listen (default: %(default)s)")
    p.add_argument("--no-browser", action="store_true", help="do not open the page")
    p.add_argument(
        "--variant",
        choices=(*VARIANTS, "all"),
        default="all",
        help="what trains at first: a variant, or all three side by side (default: all)",
    )
    p.add_argument(
        "--root", type=Path, default=Path("runs"), help="where Save puts runs (default: runs)"
    )
    p.add_argument("--no-compile", action="store_true", help="train the step eagerly")
    p.add_argument("--tensorboard", action="store_true", help="the runs also log to TensorBoard")
    args = p.parse_args(argv)
    if not 0 <= args.port < 65536:
        raise UserError(f"--port must be in 0..65535 (0: a free one), got {args.port}")
    return args


def serve_page(args: argparse.Namespace) -> int:
    """The session's thread and the server, until Ctrl-C or SIGTERM."""
    if args.host not in LOCAL:
        print(f"warning: --host {args.host}: anyone who can reach it can steer the training")
    session = live.new_session(args.variant, args.root, not args.no_compile, args.tensorboard)
    stop = threading.Event()
    trainer = threading.Thread(target=live.serve, args=(session, stop), daemon=True)
    handler = type("LiveHandler", (Handler,), {"session": session, "stop": stop})
    try:
        server = ThreadingHTTPServer((args.host, args.port), handler)
    except OSError as e:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {e.strerror or e}") from None
    server.daemon_threads = True
    url = f"http://{args.host}:{server.server_port}/"
    print(f"lab5 live: {url} (Ctrl-C stops it)", flush=True)
    trainer.start()
    if not args.no_browser:
        webbrowser.open(url)
    try:
        with endings.signals_stop_the_run():
            server.serve_forever()
    except KeyboardInterrupt:
        print("stopped: save a run from the page to keep it", flush=True)
    finally:
        stop.set()
        server.server_close()
        trainer.join(timeout=60)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    return exit_status(lambda: serve_page(parse_args(args)), "stopped")
