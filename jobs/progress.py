"""What a long command shows on stderr while it runs: its start-up steps, then progress.

* On a terminal: each step as a status line, replaced by the next and cleared, then a bar updated per
  batch of frames; rate and ETA are measured from the steady state (after the first batch).
* Off a terminal (nohup, CI, a log file): the steps as lines, then one plain line every ~15 s
  (``MESHFLEET_PROGRESS_INTERVAL`` seconds): ``progress: 48/112 frames (43%) 1.21 frames/s ETA 53s
  units 2/4 errors 0``, and a last one at the end. The steps are written once the job is running
  (first progress) or has succeeded: a user error stays the one line on stderr that names the input.
"""

from __future__ import annotations

import os
import sys
import threading
from typing import Any, TextIO

from pipelines.skeleton import Progress

DEFAULT_INTERVAL_S = 15.0


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    seconds = int(round(seconds))
    return f"{seconds // 3600}h{seconds // 60 % 60:02d}m" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def progress_line(p: Progress, what: str = "frames") -> str:
    share = f" ({100 * p.items_done / p.items_total:.0f}%)" if p.items_total else ""
    rate = p.rate()
    return (f"progress: {p.items_done}/{p.items_total} {what}{share}  {rate:.2f} {what}/s  ETA {_duration(p.eta_s())}  "
            f"units {p.units_done}/{p.units_total}  errors {p.error_rows}")


class ProgressDisplay:
    """``step(text)`` for start-up steps, ``progress(Progress)`` per batch, ``close()`` at the end."""

    def __init__(self, stream: TextIO | None = None, what: str = "frames", interval_s: float | None = None):
        self.stream = stream or sys.stderr
        self.what = what
        self.tty = self.stream.isatty()
        env = os.environ.get("MESHFLEET_PROGRESS_INTERVAL")
        self.interval = interval_s if interval_s is not None else float(env) if env else DEFAULT_INTERVAL_S
        self.latest: Progress | None = None
        self.bar: Any = None
        self.lock = threading.Lock()
        self.ticker: threading.Thread | None = None
        self.done = threading.Event()
        self.pending: list[str] = []  # steps not written yet (off a terminal)
        self.status = False  # a step's status line is on the terminal

    def step(self, text: str) -> None:
        with self.lock:
            if self.tty:
                self.stream.write(f"\r\033[K{text}...")
                self.status = True
            else:
                self.pending.append(f"{text}...\n")
            self.stream.flush()

    def _write_steps(self, keep: bool = True) -> None:
        if self.status:
            self.stream.write("\r\033[K")
            self.status = False
        if keep:
            self.stream.write("".join(self.pending))
        self.pending.clear()
        self.stream.flush()

    def progress(self, p: Progress) -> None:
        with self.lock:
            self.latest = p
            self._write_steps()
            if self.tty:
                self._bar(p)
            elif self.ticker is None:  # off a terminal: a line now, then one every interval
                self._line(p)
                self.ticker = threading.Thread(target=self._tick, name="progress", daemon=True)
                self.ticker.start()

    def _tick(self) -> None:
        while not self.done.wait(self.interval):
            with self.lock:
                if self.latest is not None:
                    self._line(self.latest)

    def _bar(self, p: Progress) -> None:
        from tqdm import tqdm

        if self.bar is None:
            self.bar = tqdm(total=p.items_total, unit=self.what[:-1] or self.what, file=self.stream,
                            dynamic_ncols=True, bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} {postfix}")
        self.bar.n = p.items_done
        self.bar.set_postfix_str(f"{p.rate():.2f} {self.what}/s ETA {_duration(p.eta_s())} "
                                 f"units {p.units_done}/{p.units_total} errors {p.error_rows}", refresh=True)

    def _line(self, p: Progress) -> None:
        self.stream.write(progress_line(p, self.what) + "\n")
        self.stream.flush()

    def close(self, ok: bool = True) -> None:
        """Stop; ``ok`` False (the command fails with a one-line error): steps not yet written are dropped."""
        self.done.set()
        with self.lock:
            self._write_steps(keep=ok)
            if self.bar is not None:
                self.bar.close()
                self.bar = None
            elif self.latest is not None and not self.tty:
                self._line(self.latest)
