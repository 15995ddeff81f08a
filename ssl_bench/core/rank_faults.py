"""A torchrun run whose other process ended: one line per surviving rank, not gloo's.

When one rank of a run dies (``kill -9``, an out-of-memory kill) or stops at another
step than the rest (SIGTERM reaching the ranks at different steps), the next collective
of every other rank fails inside the backend with a long traceback ("Connection closed
by peer"). :func:`peer_lost` recognises that failure; the engine turns it into
:class:`PeerLost`, a one-line error naming this rank, the step it was at and the last
checkpoint, and the command line adds how to continue (``torchrun ... --resume``).
"""

from __future__ import annotations

import re
from pathlib import Path

from ssl_bench.core.errors import UserError

#: What the backends say when the process at the other end of a collective is gone.
PEER_GONE = ("closed by peer", "reset by peer", "broken pipe", "connection refused",
             "connection closed", "timed out waiting", "communicator was aborted")


class PeerLost(UserError):
    """Another process of this torchrun run ended; this rank cannot go on."""

    def __init__(self, rank: int, size: int, step: int, cause: str,
                 output: Path | None, checkpoint_step: int | None) -> None:
        self.rank, self.size, self.step = rank, size, step
        self.output, self.checkpoint_step = output, checkpoint_step
        kept = ("no checkpoint yet" if checkpoint_step is None
                else f"the last checkpoint is of step {checkpoint_step}"
                + (f" in {output}" if output is not None else ""))
        super().__init__(f"rank {rank} of {size}: another process of this torchrun run "
                         f"ended ({cause}) while this one was at step {step}; {kept}")


def peer_lost(exc: BaseException) -> str | None:
    """The short cause if ``exc`` is a collective failing because a peer is gone."""
    import torch.distributed as dist

    dist_error = getattr(dist, "DistError", None)
    if not isinstance(exc, RuntimeError):
        return None
    text = str(exc).strip()
    if not (dist_error is not None and isinstance(exc, dist_error)
            or any(mark in text.lower() for mark in PEER_GONE)):
        return None
    return short_cause(text)


def short_cause(text: str) -> str:
    """A backend's message without its source location and addresses, on one line:
    ``[../gloo/transport/tcp/pair.cc:534] Connection closed by peer [127.0.0.1]:41563``
    -> ``Connection closed by peer``; ``Read error: Connection reset by peer. This is
    typically caused by ...`` -> ``Read error: Connection reset by peer``."""
    line = next((part for part in text.splitlines() if part.strip()), text).strip()
    line = re.sub(r"^\[[^\]]*\]\s*", "", line)  # [file.cc:123]
    line = re.sub(r"\s*\[[0-9a-fA-F.:]+\]:\d+", "", line)  # [127.0.0.1]:41563
    line = re.split(r"(?<=[a-z])\. ", line, maxsplit=1)[0].rstrip(".")  # its advice after
    return line[:200] or "the backend gave no reason"
