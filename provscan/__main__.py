"""`python -m provscan` and the `provscan` script: interrupts are handled before anything heavy
is imported, so a SIGINT or SIGTERM at any moment (even during start-up) ends with exit 3."""

from __future__ import annotations

import contextlib
import signal
import sys
from collections.abc import Sequence

from provscan import interrupts


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: install the signal handlers, then run provscan.cli.main."""
    interrupts.install()
    try:
        from provscan.cli import main as run  # click, pydantic, ...: slow, and interruptible

        run(argv)
    except (interrupts.Interrupted, KeyboardInterrupt) as exc:
        signum = exc.signum if isinstance(exc, interrupts.Interrupted) else signal.SIGINT
        with contextlib.suppress(Exception):
            print(interrupts.message(signum), file=sys.stderr)
        sys.exit(interrupts.EXIT_INTERRUPTED)
    finally:
        interrupts.disarm()


if __name__ == "__main__":
    main()
