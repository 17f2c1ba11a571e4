"""The REST server (TF Serving's port 8501) on tornado: the routes and formats are
`serving.rest_api`; this module is the transport.

What tornado does for us: a body cap checked against Content-Length before any byte is
read (a negative, non-numeric or oversized length: 400, connection closed), a header
timeout for idle and stalled connections, a body timeout, keep-alive, and no thread per
connection (one event-loop thread; 300 stalled sockets cost file descriptors, not
threads). What this module adds: a connection cap (beyond it, 503 and close), a bounded
pool of worker threads running the model, and a graceful stop that lets requests in
flight finish within the grace period and then closes idle keep-alive connections.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import ssl
import threading
from concurrent import futures

import tornado.httpserver
import tornado.netutil
import tornado.web

from serving import rest_api
from serving.predictor import Predictor

log = logging.getLogger(__name__)
# tornado logs every malformed request at INFO ("Malformed HTTP message"): a client could
# flood the log; those are answered 400 and need no line each.
logging.getLogger("tornado.general").setLevel(logging.WARNING)
_REFUSED = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"


@dataclasses.dataclass(frozen=True)
class RestOptions:
    """Limits of the REST server.

    Attributes:
        max_body_bytes: largest request body (Content-Length checked before reading).
        idle_timeout_s: a connection that sends no complete request header for this
            long is closed (idle keep-alive and stalled sockets alike).
        body_timeout_s: longest time to receive a body.
        max_connections: open connections beyond this are answered 503 and closed.
        workers: threads running requests (the model); more requests wait in a queue.
    """

    max_body_bytes: int = 64 << 20
    idle_timeout_s: float = 30.0
    body_timeout_s: float = 60.0
    max_connections: int = 128
    workers: int = 8


class _CappedHTTPServer(tornado.httpserver.HTTPServer):
    """An HTTPServer that refuses connections beyond `max_connections`."""

    max_connections = 128

    def handle_stream(self, stream, address):
        if len(self._connections) >= self.max_connections:
            log.warning("REST: %d connections open, refusing %s", len(self._connections), address)
            stream.io_loop.call_later(5.0, stream.close)  # a client that never reads
            stream.write(_REFUSED).add_done_callback(lambda _: stream.close())
            return
        super().handle_stream(stream, address)


class _Handler(tornado.web.RequestHandler):
    """Every path and method: runs `rest_api.handle` in the worker pool."""

    def initialize(self, server: RestServer):
        self.server = server

    async def _answer(self):
        server = self.server
        if server.stopping:
            status, payload = 503, {"error": "the server is shutting down"}
            self.set_header("Connection", "close")
        else:
            server.enter()
            try:
                method, path, body = self.request.method, self.request.path, self.request.body
                status, payload = await asyncio.get_running_loop().run_in_executor(
                    server.pool, rest_api.handle, server.predictor, method, path, body
                )
            finally:
                server.leave()
        if status >= 500:
            log.error("REST %s %s: %d %s", self.request.method, self.request.path[:200],
                      status, payload.get("error", "")[:500])  # fmt: skip
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(payload))

    get = post = put = delete = patch = options = _answer


class RestServer:
    """TF Serving's REST API on its own event-loop thread.

    Args:
        predictor: answers the requests.
        host, port: where to listen (port 0: any free port, see `port`).
        options: limits, see RestOptions.
        ssl_context: serve HTTPS when given.
    """

    def __init__(
        self,
        predictor: Predictor,
        host: str,
        port: int,
        options: RestOptions | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ):
        self.predictor = predictor
        self.options = options = options or RestOptions()
        self.stopping = False
        self.pool = futures.ThreadPoolExecutor(options.workers, thread_name_prefix="rest")
        self._inflight = 0
        self._idle = threading.Condition()
        self._sockets = tornado.netutil.bind_sockets(port, host)
        self.port = self._sockets[0].getsockname()[1]
        self._ssl_context = ssl_context
        self._loop: asyncio.AbstractEventLoop | None = None
        self._http: _CappedHTTPServer | None = None
        started = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(started,), name="rest-loop")
        self._thread.daemon = True
        self._thread.start()
        started.wait()

    def _run(self, started: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        app = tornado.web.Application([(r"/.*", _Handler, {"server": self})], log_function=bool)
        opts = self.options
        self._http = _CappedHTTPServer(
            app,
            ssl_options=self._ssl_context,
            max_body_size=opts.max_body_bytes,
            max_buffer_size=opts.max_body_bytes,
            idle_connection_timeout=opts.idle_timeout_s,
            body_timeout=opts.body_timeout_s,
        )
        self._http.max_connections = opts.max_connections
        self._http.add_sockets(self._sockets)
        started.set()
        self._loop.run_forever()
        self._loop.close()

    def enter(self) -> None:
        with self._idle:
            self._inflight += 1

    def leave(self) -> None:
        with self._idle:
            self._inflight -= 1
            self._idle.notify_all()

    def stop(self, grace_s: float) -> bool:
        """Stops accepting; waits up to `grace_s` for requests in flight; closes every
        connection (idle keep-alive ones at once); True if nothing was cut short."""
        self.stopping = True
        self._loop.call_soon_threadsafe(self._http.stop)
        with self._idle:
            finished = self._idle.wait_for(lambda: self._inflight == 0, grace_s)
        closing = asyncio.run_coroutine_threadsafe(self._http.close_all_connections(), self._loop)
        try:
            closing.result(timeout=5.0)
        except (futures.TimeoutError, Exception):  # noqa: BLE001 - stopping regardless
            log.warning("REST: some connections did not close in time")
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5.0)
        self.pool.shutdown(wait=finished)
        return finished
