"""A small in-memory Kubeflow Pipelines API server (the v2beta1 REST endpoints kfp 2.5 calls).

Runs stdlib `http.server` on a real local socket in a thread, so `kfp.Client` talks
to it over HTTP exactly as to a cluster. It records every request (method, path,
query, JSON body or uploaded file) for the tests to assert on. Endpoints under
/apis/v2beta1: healthz; pipelines (list by display_name filter), pipelines/upload,
pipelines/upload_version, pipelines/{id}/versions; experiments (list, create);
runs (create, list); recurringruns (create). With `token` set, a request without
`Authorization: Bearer <token>` gets 401; `fail` maps a path to a forced status.
"""

from __future__ import annotations

import dataclasses
import email.parser
import email.policy
import itertools
import json
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml

PREFIX = "/apis/v2beta1"
CREATED = "2026-01-0{}T03:00:00Z"


@dataclasses.dataclass
class Request:
    """One recorded request."""

    method: str
    path: str  # without PREFIX
    query: dict
    body: dict | None = None  # JSON bodies
    upload: str | None = None  # the uploaded pipeline file's text


class FakeKfpServer:
    """See the module docstring. Use as a context manager; `url` is the --host value."""

    def __init__(self, token: str | None = None):
        self.token = token
        self.fail: dict[str, int] = {}
        self.requests: list[Request] = []
        self.pipelines: dict[str, dict] = {}
        self.versions: dict[str, list[dict]] = {}
        self.experiments: dict[str, dict] = {}
        self.runs: list[dict] = []
        self.recurring_runs: list[dict] = []
        self._ids = itertools.count(1)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()

    def calls(self, method: str, path: str) -> list[Request]:
        """The recorded requests to one endpoint."""
        return [r for r in self.requests if r.method == method and r.path == path]

    def _id(self, kind: str) -> str:
        return f"{kind}-{next(self._ids)}"

    # --- endpoint logic: (status, JSON body) -------------------------------------------

    def _version(self, pipeline_id: str, name: str, spec: dict) -> dict:
        versions = self.versions.setdefault(pipeline_id, [])
        version = {
            "pipeline_id": pipeline_id,
            "pipeline_version_id": self._id("version"),
            "display_name": name,
            "pipeline_spec": spec,
            "created_at": CREATED.format(min(len(versions) + 1, 9)),
        }
        versions.append(version)
        return version

    def handle(self, method: str, path: str, query: dict, req: Request) -> tuple[int, dict]:
        """Routes one request."""
        if method == "GET" and path == "/healthz":
            return 200, {"commit_sha": "fake", "multi_user": False}
        if path == "/pipelines" and method == "GET":
            found = [p for p in self.pipelines.values() if _matches(p, query)]
            return 200, {"pipelines": found, "total_size": len(found)} if found else {}
        if path == "/pipelines/upload" and method == "POST":
            spec = yaml.safe_load(req.upload)
            pipeline = {"pipeline_id": self._id("pipeline"), "display_name": query["name"]}
            self.pipelines[pipeline["pipeline_id"]] = pipeline
            self._version(pipeline["pipeline_id"], query["name"], spec)
            return 200, pipeline
        if path == "/pipelines/upload_version" and method == "POST":
            if query.get("pipelineid") not in self.pipelines:
                return 404, {"error": "pipeline not found", "code": 5}
            spec = yaml.safe_load(req.upload)
            return 200, self._version(query["pipelineid"], query["name"], spec)
        if path.startswith("/pipelines/") and path.endswith("/versions") and method == "GET":
            versions = self.versions.get(path.split("/")[2])
            if versions is None:
                return 404, {"error": "pipeline not found", "code": 5}
            limit = int(query.get("page_size", 100))
            return 200, {"pipeline_versions": list(reversed(versions))[:limit]}
        return self._jobs(method, path, query, req)

    def _jobs(self, method: str, path: str, query: dict, req: Request) -> tuple[int, dict]:
        if path == "/experiments" and method == "GET":
            found = [e for e in self.experiments.values() if _matches(e, query)]
            return 200, {"experiments": found} if found else {}
        if path == "/experiments" and method == "POST":
            experiment = {**req.body, "experiment_id": self._id("experiment")}
            self.experiments[experiment["experiment_id"]] = experiment
            return 200, experiment
        if path == "/runs" and method == "POST":
            run = {**req.body, "run_id": self._id("run"), "state": "PENDING"}
            run["created_at"] = CREATED.format(min(len(self.runs) + 1, 9))
            self.runs.append(run)
            return 200, run
        if path == "/runs" and method == "GET":
            wanted = query.get("experiment_id")
            runs = [r for r in self.runs if wanted in (None, r["experiment_id"])]
            runs = sorted(runs, key=lambda r: r["created_at"], reverse=True)
            return 200, {"runs": runs[: int(query.get("page_size", 10))]}
        if path == "/recurringruns" and method == "POST":
            recurring = {**req.body, "recurring_run_id": self._id("recurring"), "status": "ENABLED"}
            self.recurring_runs.append(recurring)
            return 200, recurring
        return 404, {"error": f"no such endpoint: {method} {path}", "code": 5}

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _serve(self, method: str) -> None:
                url = urllib.parse.urlsplit(self.path)
                path = url.path[len(PREFIX) :] if url.path.startswith(PREFIX) else url.path
                query = dict(urllib.parse.parse_qsl(url.query))
                req = Request(method, path, query)
                _read_body(self, req)
                server.requests.append(req)
                if server.token and self.headers.get("Authorization") != f"Bearer {server.token}":
                    status, body = 401, {"error": "Unauthorized", "message": "missing or bad token"}
                elif path in server.fail:
                    status, body = server.fail[path], {"error": "forced", "message": "forced"}
                else:
                    status, body = server.handle(method, path, query, req)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):  # noqa: N802 (http.server API)
                self._serve("GET")

            def do_POST(self):  # noqa: N802 (http.server API)
                self._serve("POST")

        return Handler


def _matches(item: dict, query: dict) -> bool:
    """Applies a KFP `filter` of EQUALS predicates on display_name (what kfp.Client sends)."""
    if "filter" not in query:
        return True
    for predicate in json.loads(query["filter"]).get("predicates", []):
        value = predicate.get("stringValue", predicate.get("string_value"))
        if item.get(predicate["key"]) != value:
            return False
    return True


def _read_body(handler: BaseHTTPRequestHandler, req: Request) -> None:
    """Fills req.body (JSON) or req.upload (multipart/form-data field `uploadfile`)."""
    length = int(handler.headers.get("Content-Length") or 0)
    raw = handler.rfile.read(length) if length else b""
    kind = handler.headers.get("Content-Type", "")
    if kind.startswith("multipart/form-data"):
        head = f"Content-Type: {kind}\r\n\r\n".encode()
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + raw)
        for part in message.iter_parts():
            if part.get_param("name", header="content-disposition") == "uploadfile":
                req.upload = part.get_payload(decode=True).decode()
    elif raw:
        req.body = json.loads(raw)
