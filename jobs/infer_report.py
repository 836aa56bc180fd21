"""``meshfleet infer`` as the command line runs it: start-up steps and progress on stderr, the summary
on stdout, the inputs that failed, interrupts, and the exit code.

Exit codes (also in ``meshfleet --help`` and the README): 0 every unit committed and no input failed;
1 the job failed; 2 usage or input error (bad option, missing file, output overlapping an input);
3 the job finished but inputs failed (error rows, or units left for a rerun after transient
failures); 130 interrupted (Ctrl-C or SIGTERM) -- rerun the same command to resume.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer

from jobs.progress import ProgressDisplay

# 1 (the job failed) and 2 (jobs.cli_base.USAGE_ERROR, a usage or input error) come with `fail`
EXIT_OK, EXIT_INPUTS_FAILED, EXIT_INTERRUPTED = 0, 3, 130
SHOWN_FAILURES = 10
RESUME = "rerun the same command to resume"


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM stops the run the way Ctrl-C does (cleanly, with the resume hint)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def run_infer_and_report(cfg: Any) -> int:
    from core.checkpoints import CheckpointError
    from core.smpl_pickle import BodyModelFileError, UnsafePickleError
    from jobs.cli_common import console, fail, input_error_code
    from jobs.config import ConfigError
    from jobs.infer import Interrupted, run_infer
    from pipelines.jobstate import JobMismatchError, OutputOverlapError
    from pipelines.readers import InputError

    display = ProgressDisplay()
    try:
        with sigterm_as_interrupt():
            summary = run_infer(cfg, display)
    except Interrupted as stop:
        display.close()
        p = stop.progress
        console.print(f"interrupted after {p.units_done} of {p.units_total} units — {RESUME}", highlight=False)
        return EXIT_INTERRUPTED
    except KeyboardInterrupt:
        display.close()
        console.print(f"interrupted before any unit was committed — {RESUME}", highlight=False)
        return EXIT_INTERRUPTED
    except (CheckpointError, BodyModelFileError, UnsafePickleError, InputError, JobMismatchError, OutputOverlapError,
            ConfigError, ValueError) as err:
        display.close(ok=False)
        fail(err, input_error_code(err))
    except BaseException:
        display.close(ok=False)
        raise
    display.close()
    typer.echo(summary.line() + f"\nresults: {cfg.output}")
    return report_failures(summary)


def report_failures(summary: Any) -> int:
    """Name up to ten failed inputs (and units left for a rerun) with their reasons, say where the
    full list is; the exit code."""
    from jobs.cli_common import console

    inputs, units = summary.failed_inputs, summary.failed_units
    if not inputs and not units:
        return EXIT_OK
    lines = []
    if inputs:
        lines.append(f"{len(inputs)} inputs failed" + (" (all of them)" if summary.all_failed else "") + ":")
        lines += [f"  {_reason(what, why)}" for what, why in inputs[:SHOWN_FAILURES]]
    if units:
        lines.append(f"{len(units)} units not committed after transient failures (rerun the same command to "
                     "retry them):")
        lines += [f"  {_reason(what, why)}" for what, why in units[:SHOWN_FAILURES]]
    if summary.failed_list and len(inputs) + len(units) > 0:
        lines.append(f"full list: {summary.failed_list}")
    console.print("\n".join(lines), highlight=False, markup=False)
    return EXIT_INPUTS_FAILED


def _reason(what: str, why: str) -> str:
    return why if why.startswith(what) else f"{what}: {why}"
