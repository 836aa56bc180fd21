"""``meshfleet submit`` and ``meshfleet jobs``: the Ray Jobs API front door."""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer

from jobs.cli_base import VERBOSE_HELP
from jobs.cli_common import fail, load_any_spec, print_spec, run_here, setup_logging
from jobs.specs import dump_spec

jobs_app = typer.Typer(help="Jobs on a Ray cluster (Ray Jobs API).", no_args_is_help=True)

PACKAGES = ("core", "pipelines", "jobs", "eval")
SPEC_NAME = "_meshfleet_spec.yaml"
FORWARDED_ENV = ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                 "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_DEFAULT_REGION",
                 "AWS_REGION", "AWS_ENDPOINT_URL", "MESHFLEET_CACHE")
TERMINAL = {"SUCCEEDED", "FAILED", "STOPPED"}
ADDRESS_HELP = "Ray dashboard / job server, e.g. http://HEAD:8265 (or $RAY_ADDRESS)."
ENTRYPOINT = f"python -m jobs.cli run {SPEC_NAME}"
# The check runs the entrypoint's interpreter on the entrypoint's import, in the job's environment.
CHECK_ENTRYPOINT = "python -c 'import sys; print(\"meshfleet-check python:\", sys.executable); import jobs.cli'"
CHECK_TIMEOUT_S = 180.0
INSTALL_HINT = ("install meshfleet's dependencies into that Python (pip install -e . from a meshfleet checkout, or "
                "use the image of infra/docker), or start the head from the environment that has them "
                "(source .venv/bin/activate && ray start --head)")


def project_root() -> Path:
    return Path(__file__).resolve().parents[1]


def stage_working_dir(spec_text: str) -> Path:
    """A working_dir for the job: meshfleet's packages and the resolved spec (no venv, no tests)."""
    stage = Path(tempfile.mkdtemp(prefix="meshfleet-submit-"))
    root = project_root()
    for package in PACKAGES:
        shutil.copytree(root / package, stage / package, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy(root / "pyproject.toml", stage / "pyproject.toml")
    (stage / SPEC_NAME).write_text(spec_text)
    return stage


def forwarded_env(names: list[str]) -> dict[str, str]:
    """Values of the named (and the standard) variables that are set here; never printed."""
    wanted = list(dict.fromkeys([*FORWARDED_ENV, *names]))
    return {name: os.environ[name] for name in wanted if name in os.environ}


def _client(address: str | None):
    from ray.job_submission import JobSubmissionClient

    target = address or os.environ.get("RAY_ADDRESS")
    if not target:
        fail("give --address http://HEAD:8265 (or set RAY_ADDRESS)", 2)
    try:
        return JobSubmissionClient(target)
    except (ConnectionError, RuntimeError, ValueError) as err:
        fail(f"cannot reach the Ray job server at {target}: {err}")


def check_cluster_python(client, runtime_env: dict, target: str) -> None:
    """Before queueing, run a short job that imports meshfleet's CLI with the job's interpreter and
    environment (``python`` on the head's PATH, the same working_dir and variables); exit 2 saying
    what to install where when it cannot. The check job is deleted afterwards."""
    job_id = client.submit_job(entrypoint=CHECK_ENTRYPOINT, runtime_env=runtime_env,
                               metadata={"meshfleet_kind": "check"})
    deadline = time.monotonic() + CHECK_TIMEOUT_S
    status = str(client.get_job_status(job_id)).split(".")[-1]
    while status not in TERMINAL and time.monotonic() < deadline:
        time.sleep(0.5)
        status = str(client.get_job_status(job_id)).split(".")[-1]
    if status not in TERMINAL:
        client.stop_job(job_id)
        typer.echo(f"warning: the check of the cluster's Python did not finish within {CHECK_TIMEOUT_S:.0f} s "
                   "(a busy cluster?); submitting anyway", err=True)
        return
    logs = client.get_job_logs(job_id)
    client.delete_job(job_id)
    if status == "SUCCEEDED":
        return
    found = re.search(r"meshfleet-check python: (\S+)", logs)
    python = f"the cluster's python ({found.group(1)})" if found else "the cluster's python"
    missing = re.search(r"No module named '([^']+)'", logs)
    if missing:
        fail(f"{target}: {python} cannot import {missing.group(1)}, so meshfleet cannot run there; {INSTALL_HINT}. "
             "Nothing was queued.", 2)
    if not found:
        fail(f"{target}: no `python` on the PATH that Ray jobs run with on the head; {INSTALL_HINT}. "
             "Nothing was queued.", 2)
    last = next((line for line in reversed(logs.splitlines()) if line.strip()), status)
    fail(f"{target}: {python} cannot run meshfleet ({last}); {INSTALL_HINT}. Nothing was queued.", 2)


def follow(client, job_id: str, poll_s: float = 1.0) -> str:
    """Stream a job's logs until it ends; returns the final status."""
    printed = 0
    while True:
        status = str(client.get_job_status(job_id)).split(".")[-1]
        logs = client.get_job_logs(job_id)
        if len(logs) > printed:
            typer.echo(logs[printed:], nl=False)
            printed = len(logs)
        if status in TERMINAL:
            return status
        time.sleep(poll_s)


def submit(
    spec: Annotated[Path, typer.Argument(help="Job spec (YAML/TOML) of any kind.")],
    address: Annotated[str | None, typer.Option(help=ADDRESS_HELP + " Without it the job runs here.")] = None,
    env: Annotated[list[str] | None, typer.Option(
        help="Extra environment variable to pass to the job (repeatable); MLflow and AWS ones are passed "
             "when set. Values are never printed or logged.")] = None,
    follow_logs: Annotated[bool, typer.Option("--follow", help="Stream the logs until the job ends.")] = False,
    check: Annotated[bool, typer.Option(
        "--check/--no-check", help="First check (a few seconds, with a short job) that the cluster's Python "
                                   "can import meshfleet; nothing is queued if not.")] = True,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the resolved spec and stop.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help=VERBOSE_HELP)] = False,
) -> None:
    """Run a job spec on a Ray cluster through the Ray Jobs API (or here, on the embedded Ray).

    The job runs `python -m jobs.cli run SPEC` with the `python` on the head's PATH (as `ray start`
    saw it); --check makes sure that Python has meshfleet's dependencies before anything is queued.
    """
    setup_logging(verbose)
    if not verbose:  # "Uploading package gcs://...", per submission
        logging.getLogger("ray.dashboard.modules.dashboard_sdk").setLevel(logging.WARNING)
    kind, config = load_any_spec(spec)
    if dry_run:
        print_spec(kind, config)
        return
    target = address or os.environ.get("RAY_ADDRESS")
    if not target:
        raise typer.Exit(run_here(kind, config))
    client = _client(target)
    variables = forwarded_env(env or [])
    stage = stage_working_dir(dump_spec(kind, config))
    runtime_env = {"working_dir": str(stage), "env_vars": variables}
    try:
        if check:
            check_cluster_python(client, runtime_env, target)
        job_id = client.submit_job(entrypoint=ENTRYPOINT, runtime_env=runtime_env, metadata={"meshfleet_kind": kind})
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    names = ", ".join(sorted(variables)) or "none"
    typer.echo(f"submitted {kind} job {job_id} to {target} (environment passed: {names})")
    if follow_logs:
        status = follow(client, job_id)
        typer.echo(f"job {job_id}: {status}")
        if status != "SUCCEEDED":
            raise typer.Exit(1)


@jobs_app.command("list")
def jobs_list(address: Annotated[str | None, typer.Option(help=ADDRESS_HELP)] = None) -> None:
    """Jobs known to the cluster, newest last."""
    for job in _client(address).list_jobs():
        kind = (job.metadata or {}).get("meshfleet_kind", "-")
        typer.echo(f"{job.submission_id}\t{str(job.status).split('.')[-1]}\t{kind}\t{job.entrypoint}")


@jobs_app.command("status")
def jobs_status(job_id: str, address: Annotated[str | None, typer.Option(help=ADDRESS_HELP)] = None) -> None:
    """Status of one job (and its error message if it failed)."""
    info = _client(address).get_job_info(job_id)
    typer.echo(f"{job_id}\t{str(info.status).split('.')[-1]}" + (f"\t{info.message}" if info.message else ""))


@jobs_app.command("logs")
def jobs_logs(
    job_id: str,
    address: Annotated[str | None, typer.Option(help=ADDRESS_HELP)] = None,
    follow_logs: Annotated[bool, typer.Option("--follow", help="Keep streaming until the job ends.")] = False,
) -> None:
    """A job's driver logs."""
    client = _client(address)
    if follow_logs:
        status = follow(client, job_id)
        raise typer.Exit(0 if status == "SUCCEEDED" else 1)
    typer.echo(client.get_job_logs(job_id), nl=False)


@jobs_app.command("stop")
def jobs_stop(
    job_id: str,
    address: Annotated[str | None, typer.Option(help=ADDRESS_HELP)] = None,
    wait: Annotated[bool, typer.Option("--wait/--no-wait", help="Wait until the job has stopped.")] = True,
) -> None:
    """Stop a running job."""
    client = _client(address)
    client.stop_job(job_id)
    status = str(client.get_job_status(job_id)).split(".")[-1]
    while wait and status not in TERMINAL:
        time.sleep(0.5)
        status = str(client.get_job_status(job_id)).split(".")[-1]
    typer.echo(f"{job_id}\t{status}")
