"""The serving capacity flags (instance counts, queue policy) of the two commands that render
the model repository, `facerestore serve --render` and `python -m export triton-repo`, made
once from runtime.contracts.service.Capacity."""
from __future__ import annotations

import argparse

from runtime.contracts.service import Capacity

DEFAULT = Capacity()


def add_capacity_options(p: argparse.ArgumentParser, when: str = "") -> None:
    """Add --python-instances, --network-instances, --max-queue-size, --queue-timeout and
    --max-pixels to `p`;
    `when` prefixes their help (e.g. '--render: ')."""
    p.add_argument("--python-instances", type=int, default=None,
                   help=f"{when}instances of each python step model, i.e. photos in flight per step "
                        "(default: 1 cpu, 4 gpu)")
    p.add_argument("--network-instances", type=int, default=None,
                   help=f"{when}instances of each network model (default: 1; faces batch up in each)")
    p.add_argument("--max-queue-size", type=int, default=DEFAULT.max_queue_size,
                   help=f"{when}requests that may wait for each python step; one more is refused at once "
                        "with UNAVAILABLE (HTTP 503), 0 = no limit (default: %(default)s)")
    p.add_argument("--queue-timeout", type=float, default=DEFAULT.queue_timeout_s,
                   help=f"{when}seconds a request may wait for a python step before it is refused with "
                        "UNAVAILABLE (HTTP 503), 0 = no limit (default: %(default)s)")
    p.add_argument("--max-pixels", type=int, default=DEFAULT.max_pixels,
                   help=f"{when}largest photo (width x height) the server decodes; a larger one is refused "
                        "with a 400 before it is decoded (default: %(default)s)")


def capacity_from(args: argparse.Namespace) -> Capacity:
    """The Capacity the flags ask for (ValueError naming the bad one)."""
    return Capacity(args.python_instances, args.network_instances, args.max_queue_size, args.queue_timeout,
                    args.max_pixels)
