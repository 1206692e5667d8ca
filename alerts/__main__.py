"""Command line: render the policy into Prometheus rules."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from alerts.policy import DEFAULT_POLICY_PATH, PolicyError, load_policy
from alerts.render import DEFAULT_RULES_PATH, render_rules

logger = logging.getLogger(__name__)

# Exit statuses: 2 for invalid input, as argparse uses for bad arguments.
EXIT_OK = 0
EXIT_DIFFERS = 1
EXIT_INVALID = 2


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of warden-alerts."""
    parser = argparse.ArgumentParser(
        prog="warden-alerts",
        description="Render the Warden policy into a Prometheus rule file.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument(
        "--policy",
        type=Path,
        default=DEFAULT_POLICY_PATH,
        help="policy file to read",
    )
    parser.add_argument(
        "--output",
        type=Path,
        default=DEFAULT_RULES_PATH,
        help="rule file to write; - writes to standard output",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=(
            "override one policy value by its dotted key, for example "
            "--set scrape_interval=1s --set violations.cpu_spike.for=2s; "
            "may be repeated"
        ),
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit with status 1 when --output differs from "
        "the rendering",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run warden-alerts and return its exit status."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = build_parser().parse_args(argv)
    try:
        policy = load_policy(args.policy, args.overrides)
    except PolicyError as error:
        print(f"warden-alerts: invalid policy {args.policy}: {error}", file=sys.stderr)
        return EXIT_INVALID
    text = render_rules(policy)

    if str(args.output) == "-":
        sys.stdout.write(text)
        return EXIT_OK
    if args.check:
        current = args.output.read_text() if args.output.exists() else None
        if current != text:
            print(
                f"warden-alerts: {args.output} is not the rendering of "
                f"{args.policy}; run warden-alerts to update it",
                file=sys.stderr,
            )
            return EXIT_DIFFERS
        return EXIT_OK

    try:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text)
    except OSError as error:
        print(
            f"warden-alerts: cannot write {args.output}: {error.strerror}; "
            "pass a writable path with --output",
            file=sys.stderr,
        )
        return EXIT_INVALID
    logger.info("wrote %s from %s", args.output, args.policy)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
