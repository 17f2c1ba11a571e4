"""`python -m pipeline ...` (and the `recsys` console script): see pipeline/cli.py.

Sets the environment TF needs before anything imports TF (schemas/environment.py);
`--verbose` anywhere on the command line keeps every log line and warning.
"""

import sys

from schemas import environment


def main(argv: list[str] | None = None) -> int:
    """The entry point; returns the exit code."""
    verbose, argv = environment.split_verbose(sys.argv[1:] if argv is None else argv)
    environment.prepare(verbose)
    environment.import_tensorflow(verbose)
    if not verbose:
        from absl import logging

        logging.set_verbosity(logging.WARNING)
    from pipeline.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
