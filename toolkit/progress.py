"""Progress of long steps (debootstrap, tarring, compression, loading) on stderr; `--quiet` makes it silent."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Lines on stderr: on a terminal one line rewritten in place, elsewhere a line per step and per quarter."""

    def __init__(self, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self._tty = enabled and bool(getattr(self.stream, "isatty", lambda: False)())
        self._open = False  # a rewritable line is on screen
        self._last = 0.0
        self._quarter = -1

    @classmethod
    def quiet(cls) -> Progress:
        return cls(enabled=False)

    def step(self, message: str) -> None:
        """A new step: always its own line."""
        if not self.enabled:
            return
        self._end_line()
        self._quarter = -1
        print(f"==> {message}", file=self.stream, flush=True)

    def status(self, message: str) -> None:
        """Where a step has got to; only a terminal shows every update."""
        if not self._tty:
            return
        now = time.monotonic()
        if now - self._last < 0.1:
            return
        self._last = now
        self.stream.write(f"\r\x1b[K    {message}")
        self.stream.flush()
        self._open = True

    def amount(self, what: str, done: int, total: int) -> None:
        """Bytes done out of total: rewritten on a terminal, else a line at each quarter."""
        if not self.enabled or total <= 0:
            return
        fraction = min(done / total, 1.0)
        text = f"{what}: {done / 1e6:,.1f} of {total / 1e6:,.1f} MB ({fraction:.0%})"
        if self._tty:
            self.status(text)
            return
        quarter = int(fraction * 4)
        if quarter > self._quarter and quarter > 0:
            self._quarter = quarter
            print(f"    {text}", file=self.stream, flush=True)

    def note(self, message: str | None = None) -> None:
        """A line that stays (the end of a step, a phase within it); clears the rewritten line."""
        if not self.enabled:
            return
        self._end_line()
        if message:
            print(f"    {message}", file=self.stream, flush=True)

    def _end_line(self) -> None:
        if self._open:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._open = False
