"""`python -m serving ...` (and the `recsys-serve` / `recsys-query` console scripts).

    python -m serving [--verbose] --model-base-path .work/serving/recommender ...  # server
    python -m serving query --user 42 --history 50 172 ...                         # client

Sets the environment TF needs before TF is imported (schemas/environment.py), then
runs serving.server.main (or serving.client.main for `query`). `--verbose` keeps every
log line and warning of TF.
"""

import sys

from schemas import environment


def serve(argv: list[str] | None = None) -> int:
    """The server: serving.server's flags."""
    verbose, argv = environment.split_verbose(sys.argv[1:] if argv is None else argv)
    environment.prepare(verbose)
    environment.import_tensorflow(verbose)
    from serving import server

    return server.main(argv)


def query(argv: list[str] | None = None) -> int:
    """The client: serving.client's `query` flags (the `query` word is optional)."""
    verbose, argv = environment.split_verbose(sys.argv[1:] if argv is None else argv)
    environment.prepare(verbose)
    environment.import_tensorflow(verbose)
    from serving import client

    return client.main(argv if argv[:1] == ["query"] else ["query", *argv])


def main(argv: list[str] | None = None) -> int:
    """`query ...` runs the client, anything else the server."""
    argv = sys.argv[1:] if argv is None else argv
    return query(argv) if argv[:1] == ["query"] else serve(argv)


if __name__ == "__main__":
    sys.exit(main())
