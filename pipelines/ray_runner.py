"""Run a skeleton job (:mod:`pipelines.skeleton`) on Ray Data, and start Ray once, only when needed.

    units (driver) -> stage 1 (tasks: one unit per call, streaming its items)
                   -> stage 2..n (tasks, or an actor pool for stages that load a model)
                   -> rows back to the driver -> commits in the driver's threads

Rows travel as Arrow blocks of numpy columns (uint8 image tensors, fixed-shape float arrays,
strings), never as pickled objects. Resources are set where ``map_batches`` is called, from each
:class:`~pipelines.skeleton.Stage`. GPUs are requested only when the cluster has some: asking for
one on a CPU-only cluster hangs forever.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import warnings
from typing import Any

from pipelines.skeleton import Batch, Collector, Job, Stage, apply_stage

log = logging.getLogger(__name__)


class _FailureLog:
    """Units whose first stage failed transiently: ``(unit, reason)``. A Ray actor on Ray."""

    def __init__(self) -> None:
        self.failed: list[tuple[str, str]] = []

    def add(self, unit: str, reason: str) -> None:
        self.failed.append((unit, reason))

    def all(self) -> list[tuple[str, str]]:
        return list(self.failed)


def _reporter(failure_log: Any):
    return lambda unit, reason: failure_log.add.remote(unit, reason)


def _task(batch: Batch, stage: Stage, first: bool, last: bool, failure_log: Any):
    yield from apply_stage(stage.build(), batch, first, last, _reporter(failure_log))


class _Actor:
    """A stage built once per actor (a model)."""

    def __init__(self, stage: Stage, first: bool, last: bool, failure_log: Any):
        self.fn = stage.build()
        self.first, self.last, self.report = first, last, _reporter(failure_log)

    def __call__(self, batch: Batch):
        yield from apply_stage(self.fn, batch, self.first, self.last, self.report)


def cluster_gpus() -> float:
    import ray

    return float(ray.cluster_resources().get("GPU", 0.0))


class RayRunner:
    """Streams a job through Ray Data on the current Ray cluster (see :class:`RayStarter`).
    ``stats`` holds Ray Data's execution statistics after a run (with ``-v``). ``restart_actors``: recreate an
    actor lost with its node (clusters); on the embedded single-node Ray a lost actor is a bug, and
    not restarting also keeps Ray from warning about restarts on every actor it starts.
    ``block_bytes``: the size Ray Data cuts blocks at (default 128 MiB); an actor task takes whole
    blocks, so a job whose rows are big (images) sets it to one actor call's worth."""

    def __init__(self, prefetch_batches: int = 2, restart_actors: bool = True, block_bytes: int | None = None):
        self.prefetch_batches = prefetch_batches
        self.restart_actors = restart_actors
        self.block_bytes = block_bytes
        self.stats = ""

    def run(self, job: Job, collector: Collector) -> list[tuple[str, str]]:
        import ray

        quiet_ray()
        context = ray.data.DataContext.get_current()  # a dataset keeps the context it was made in
        default_block_bytes = context.target_max_block_size
        if self.block_bytes:  # blocks of one model call: results (and progress) stream back per call
            context.target_max_block_size = self.block_bytes
        failure_log: Any = ray.remote(num_cpus=0)(_FailureLog).remote()
        rows = [{"unit": u.name, "payload": u.payload, "items": u.items} for u in job.units]
        ds: Any = ray.data.from_items(rows, override_num_blocks=len(rows))
        gpus = cluster_gpus()
        for i, stage in enumerate(job.stages):
            first, last = i == 0, i == len(job.stages) - 1
            kwargs = {"stage": stage, "first": first, "last": last, "failure_log": failure_log}
            common: dict[str, Any] = {"batch_size": 1 if first else stage.batch_size, "batch_format": "numpy",
                                      "num_cpus": stage.num_cpus, "zero_copy_batch": True}
            if stage.num_gpus and gpus:
                common["num_gpus"] = stage.num_gpus
            if stage.actor:
                restarts = {} if self.restart_actors else {"max_restarts": 0}
                with warnings.catch_warnings():  # max_restarts has no named parameter yet (Ray 2.60)
                    warnings.simplefilter("ignore", DeprecationWarning)
                    ds = ds.map_batches(_Actor, fn_constructor_kwargs=kwargs, **common, **restarts,
                                        compute=ray.data.ActorPoolStrategy(size=stage.concurrency))
            else:
                ds = ds.map_batches(_task, fn_kwargs=kwargs, **common)
        try:
            for batch in ds.iter_batches(batch_size=None, batch_format="numpy",
                                         prefetch_batches=self.prefetch_batches):
                collector.add(batch)
        finally:
            context.target_max_block_size = default_block_bytes
        if logging.getLogger("jobs").isEnabledFor(logging.INFO):  # -v: the time each operator took
            self.stats = ds.stats()
        return ray.get(failure_log.all.remote())


def quiet_ray() -> None:
    """Ray's and Ray Data's own output off: progress bars, execution plans, notices (the token-auth
    one included). With ``-v`` (meshfleet logging at INFO) Ray logs at INFO too."""
    os.environ.setdefault("RAY_DATA_DISABLE_PROGRESS_BARS", "1")  # read when Ray Data is imported
    import ray.data  # noqa: F401  (configures its loggers on import: levels are set after)

    level = logging.INFO if logging.getLogger("jobs").getEffectiveLevel() <= logging.INFO else logging.ERROR
    for name in ("ray", "ray.data"):
        logging.getLogger(name).setLevel(level)


class RayStarter:
    """Starts (or connects to) Ray in a background thread, so that the driver can load and check
    the model and plan the units meanwhile; :meth:`wait` joins the start, :meth:`stop` shuts down
    what this starter started. Ray is started at most once per process.

    The thread lives until :meth:`stop`: Ray's processes are started with the parent-death signal,
    which the kernel sends when the *thread* that started them ends. Ray's own SIGTERM handler (an
    exit without cleanup) is not installed from a thread, so SIGTERM stops the job cleanly.
    """

    def __init__(self, address: str | None):
        self.address = address
        self.embedded = cluster_address(address) is None
        self.started = False
        self.error: BaseException | None = None
        self.ready = threading.Event()
        self.release = threading.Event()
        self.thread = threading.Thread(target=self._hold, name="ray", daemon=True)
        self.thread.start()

    def _hold(self) -> None:
        try:
            self.started = ensure_ray(self.address)
        except BaseException as err:  # surfaced by wait()
            self.error = err
        self.ready.set()
        self.release.wait()
        if self.started:
            import ray

            ray.shutdown()

    def wait(self) -> None:
        self.ready.wait()
        if self.error is not None:
            raise self.error
        if threading.current_thread() is threading.main_thread():
            # Ray's C++ failure handler takes SIGTERM over (and prints a stack dump on it):
            # registering Python's handler again gives the signal back to the job.
            signal.signal(signal.SIGTERM, signal.getsignal(signal.SIGTERM) or signal.SIG_DFL)

    def stop(self) -> None:
        self.release.set()
        self.thread.join()


def cluster_address(address: str | None) -> str | None:
    """The cluster to attach to: ``address``, or inside a Ray job the job's own (``RAY_ADDRESS``);
    None: an embedded local Ray."""
    inherited = os.environ.get("RAY_ADDRESS", "")
    return address or (inherited if inherited and not inherited.startswith("http") else None)


def ensure_ray(address: str | None) -> bool:
    """Connect to ``address`` or start an embedded local Ray; True if this call started it."""
    import ray

    if ray.is_initialized():
        return False
    quiet_ray()
    address = cluster_address(address)
    if address:
        runtime_env = None
        if address.startswith("ray://"):  # client mode: ship our packages to the cluster
            import core
            import eval as eval_package
            import jobs
            import pipelines

            runtime_env = {"py_modules": [core, pipelines, eval_package, jobs]}
        ray.init(address=address, runtime_env=runtime_env, log_to_driver=False, logging_level=logging.WARNING)
    else:
        ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, _node_ip_address="127.0.0.1",
                 log_to_driver=False, configure_logging=False, logging_level=logging.WARNING)
    return True
