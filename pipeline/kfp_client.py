"""Talking to a Kubeflow Pipelines 2.x API server with `kfp.Client`: connect, upload, errors.

Used by pipeline/kfp_cli.py. Server errors become `KfpError` with one readable line.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import tempfile
from collections.abc import Mapping

import yaml

HEALTHZ_TIMEOUT_S = 10


class KfpError(Exception):
    """A failure talking to the KFP API server, described in one line."""


def _server_message(body) -> str:
    """The `message` / `error` of a KFP JSON error body, else the body's first line."""
    if not body:
        return ""
    text = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
    try:
        data = json.loads(text)
        text = str(data.get("message") or data.get("error") or text)
    except (ValueError, AttributeError):
        pass
    return text.strip().splitlines()[0][:200] if text.strip() else ""


def describe(error: Exception, host: str) -> str:
    """One line for an error from the kfp client or the transport under it."""
    import kfp_server_api
    import urllib3

    if isinstance(error, kfp_server_api.ApiException):
        status, message = error.status, _server_message(error.body)
        detail = f": {message}" if message else ""
        if status == 401:
            return f"authentication failed at {host} (401 Unauthorized){detail}; pass --token"
        if status == 403:
            return f"permission denied at {host} (403 Forbidden){detail}"
        if status == 404:
            return (
                f"not found at {host} (404){detail}; is --host the KFP API endpoint "
                "(e.g. http://localhost:8080 or https://HOST/pipeline)?"
            )
        if not status:
            return f"cannot reach the KFP API server at {host}: {error.reason}"
        return f"the KFP API server at {host} answered {status} {error.reason}{detail}"
    if isinstance(error, urllib3.exceptions.HTTPError):
        reason = getattr(error, "reason", None) or error
        return f"cannot reach the KFP API server at {host}: {reason}"
    return f"{type(error).__name__}: {error}"


def connect(host: str, token: str | None = None):
    """A `kfp.Client` for `host`, after one health check that fails fast with a clear error.

    (kfp.Client itself retries the health check 5 times, 5 s apart, on any HTTP error.)
    """
    import kfp
    import kfp_server_api

    config = kfp_server_api.Configuration(host=host.rstrip("/"))
    config.retries = 1
    if token:
        config.api_key["authorization"] = token
        config.api_key_prefix["authorization"] = "Bearer"
    api = kfp_server_api.HealthzServiceApi(kfp_server_api.ApiClient(config))
    api.get_healthz(_request_timeout=HEALTHZ_TIMEOUT_S)
    with contextlib.redirect_stderr(io.StringIO()):  # kfp's FutureWarning about versions
        return kfp.Client(host=host, existing_token=token)


def spec_digest(spec: Mapping) -> str:
    """A short content hash of a PipelineSpec dict (the default version name)."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def _latest_version(client, pipeline_id: str):
    response = client.list_pipeline_versions(pipeline_id, page_size=1, sort_by="created_at desc")
    versions = response.pipeline_versions or []
    return versions[0] if versions else None


def ensure_version(
    client, spec: Mapping, pipeline_name: str, version_name: str | None = None
) -> tuple[str, str, str]:
    """Uploads the pipeline, or a new version of it, unless its latest version is this spec.

    Args:
        client: a kfp.Client.
        spec: the PipelineSpec dict (the IR's "pipelineSpec").
        pipeline_name: the pipeline's display name on the server.
        version_name: the new version's name (default: "<pipeline_name>-<spec hash>").
            Given explicitly, a new version is always uploaded.

    Returns:
        (pipeline_id, version_id, what happened: "uploaded pipeline" | "uploaded version" |
        "reused version").
    """
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, f"{pipeline_name}.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(dict(spec), f, sort_keys=True)
        pipeline_id = client.get_pipeline_id(pipeline_name)
        if pipeline_id is None:
            pipeline = client.upload_pipeline(path, pipeline_name=pipeline_name)
            latest = _latest_version(client, pipeline.pipeline_id)
            if latest is None:
                raise KfpError(f"pipeline {pipeline_name!r} was uploaded but has no version")
            return pipeline.pipeline_id, latest.pipeline_version_id, "uploaded pipeline"
        latest = _latest_version(client, pipeline_id)
        if version_name is None and latest is not None and latest.pipeline_spec == dict(spec):
            return pipeline_id, latest.pipeline_version_id, "reused version"
        name = version_name or f"{pipeline_name}-{spec_digest(spec)}"
        version = client.upload_pipeline_version(path, name, pipeline_id=pipeline_id)
        return pipeline_id, version.pipeline_version_id, "uploaded version"


def experiment_id(client, name: str) -> str:
    """The id of experiment `name`, created if absent."""
    return client.create_experiment(name).experiment_id
