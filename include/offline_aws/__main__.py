"""``offline-aws`` / ``python -m offline_aws``: run the emulator and print how to point clients at it."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from . import DEFAULT_REGION
from .limits import check_time_scale
from .persistence import save_state
from .server import Emulator
from .settings import TIME_SCALE_ENV


def _time_scale(raw: str) -> float:
    try:
        return check_time_scale(raw)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="offline-aws", description=__doc__)
    parser.add_argument("--host", default=os.environ.get("OFFLINE_AWS_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("OFFLINE_AWS_PORT", "4566")))
    parser.add_argument(
        "--time-scale",
        type=_time_scale,
        default=None,
        help=f"0 = instant state machines, 1 = realistic seconds (default: ${TIME_SCALE_ENV} or 1)",
    )
    parser.add_argument("--region", default=os.environ.get("AWS_DEFAULT_REGION", DEFAULT_REGION))
    parser.add_argument(
        "--state-dir",
        default=os.environ.get("OFFLINE_AWS_STATE_DIR"),
        help="load SageMaker resources and S3 objects from here at start, save them at shutdown",
    )
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument(
        "--admin-token",
        default=None,
        help="require this token (header X-Offline-AWS-Admin-Token) on the /_offline_aws/ admin routes; "
        "without one they answer only on loopback (default: $OFFLINE_AWS_ADMIN_TOKEN)",
    )
    parser.add_argument(
        "--enforce-iam",
        action="store_true",
        default=None,
        help="require every request to be signed by an IAM user or role whose policies allow it; prints the "
        "keys of the emulator's own allow-all identity to create users with (default: $OFFLINE_AWS_ENFORCE_IAM)",
    )
    args = parser.parse_args(argv)

    emulator = Emulator(
        args.host, args.port, time_scale=args.time_scale, region=args.region, access_log=args.access_log,
        admin_token=args.admin_token, enforce_iam=args.enforce_iam,
    ).start(state_dir=args.state_dir or None)
    for key, value in emulator.env().items():
        print(f"export {key}={value}")
    print(f"# offline AWS listening on {emulator.url} (time scale {emulator.clock.time_scale})", flush=True)

    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
        if args.state_dir:
            save_state(emulator, args.state_dir)
    finally:
        emulator.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
