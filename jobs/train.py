"""``meshfleet train``: ROMP / BEV on Ray Train -- the typed config and the driver.

The driver checks the config, claims the output (a rerun with the same job continues it), finds the
step of the latest checkpoint, plans the data order from there (:mod:`pipelines.train_data`), and
runs :func:`jobs.train_loop.train_worker` on ``workers`` Ray Train workers (``TorchTrainer``, DDP:
gloo on CPU, NCCL on GPU). Checkpoints go to ``OUTPUT/train/checkpoint_<step>/`` (Ray Train's
storage; ``num_to_keep`` of them stay); the final weights become ``OUTPUT/model.pth``, a meshfleet
checkpoint that ``meshfleet infer --checkpoint`` runs with no other flag.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from core.nets.config import NetworkConfig
from core.train.augment import AugmentConfig
from jobs.config import ConfigError, check_output, shipped_asset
from pipelines.body_model_sets import OPEN as OPEN_SET
from pipelines.body_model_sets import is_open
from pipelines.storage import is_local, join, normalise, url_to_fs, with_retries, write_bytes_atomic
from pipelines.train_data import DataSource, TrainDataError, label_files

log = logging.getLogger(__name__)
SCHEDULES = ("cosine", "step", "constant")
PRECISIONS = ("auto", "fp32", "bf16")
RUN_DIR = "train"  # Ray Train's run folder under the output (checkpoints)
CHECKPOINT_PREFIX = "checkpoint_"
STATE_FILE = "train_state.pt"
MODEL_FILE = "model.pth"
METRICS_FILE = "metrics.jsonl"
SNAPSHOT_FILE = "checkpoint_manager_snapshot.json"  # Ray Train V2 writes it next to the checkpoints


@dataclass(frozen=True)
class TrainConfig:
    """``meshfleet train``.

    data: annotation datasets with sampling weights; model / backbone / input_size: the network;
    output: folder or URI (checkpoints, metrics, model.pth); workers: Ray Train workers;
    gpus_per_worker: 0 = CPU; batch_size: images per optimiser step over all workers (a multiple of
    workers x accumulate); accumulate: micro-batches per step (gradient accumulation); steps or
    epochs (one of them; an epoch is the mixed sets' total size); lr: peak learning rate (Adam);
    warmup_steps: linear warm-up (-1: 5 % of the steps, at most 500); schedule: cosine (to
    lr x final_lr_ratio), step (x0.1 at 60 % and 85 %) or constant; val: an AGORA-layout synth set
    scored every val_every steps (0: at checkpoints) and at the end; init: a meshfleet checkpoint to
    start from (same model); checkpoint_every: steps; keep_checkpoints: how many stay; precision:
    auto (bf16 autocast on GPU, fp32 on CPU); max_people: people per image kept in a batch;
    max_failures: worker-group restarts (Ray Train FailureConfig); data_actors / data_cpus: the Ray
    Data decode + augment stage; threads: torch threads per worker (default: the node's cores / its
    workers).
    """

    data: tuple[DataSource, ...]
    output: str
    model: str = "romp"
    backbone: str = "small"
    input_size: int = 256
    workers: int = 1
    gpus_per_worker: float = 0.0
    cpus_per_worker: float = 1.0
    batch_size: int = 8
    accumulate: int = 1
    steps: int | None = None
    epochs: int | None = None
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup_steps: int = -1
    schedule: str = "cosine"
    final_lr_ratio: float = 0.05
    val: str | None = None
    val_every: int = 0
    init: str | None = None
    checkpoint_every: int = 500
    keep_checkpoints: int = 2
    seed: int = 0
    precision: str = "auto"
    max_people: int = 16
    match_to_peaks: bool = False
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    body_models: str = OPEN_SET
    max_failures: int = 3
    data_actors: int = 1
    data_cpus: float = 0.5
    threads: int | None = None
    log_every: int = 10
    mlflow_uri: str | None = None
    use_mlflow: bool = True
    experiment: str = "meshfleet-train"
    overwrite: bool = False
    address: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "output", normalise(str(self.output)))
        object.__setattr__(self, "data", tuple(DataSource(normalise(d.uri), d.weight) for d in self.data))
        if self.val:
            object.__setattr__(self, "val", normalise(str(self.val)))
        if self.init:  # `--init demo` starts from the shipped checkpoint
            object.__setattr__(self, "init", normalise(shipped_asset("checkpoint", str(self.init))))
        if self.body_models != OPEN_SET and not is_open(self.body_models):
            object.__setattr__(self, "body_models", normalise(str(self.body_models)))

    @property
    def network(self) -> NetworkConfig:
        return NetworkConfig(self.model, self.backbone, self.input_size)

    @property
    def worker_batch(self) -> int:
        """Images per worker and micro-batch."""
        return self.batch_size // (self.workers * self.accumulate)

    def validate(self) -> TrainConfig:
        """Check what can be checked before Ray starts (ConfigError / TrainDataError name the key)."""
        try:
            self.network  # noqa: B018 -- raises on an impossible network
        except ValueError as err:
            raise ConfigError(f"network: {err}") from err
        if not self.data:
            raise ConfigError("data: give at least one --data DIR[:WEIGHT]")
        if not any(d.weight > 0 for d in self.data):
            raise ConfigError("data: every --data weight is 0")
        if (self.steps is None) == (self.epochs is None):
            raise ConfigError("give exactly one of --steps and --epochs")
        if (self.steps or 1) < 1 or (self.epochs or 1) < 1:
            raise ConfigError("steps / epochs: must be >= 1")
        if self.workers < 1 or self.accumulate < 1 or self.batch_size < 1:
            raise ConfigError("workers, accumulate and batch_size: must be >= 1")
        if self.batch_size % (self.workers * self.accumulate):
            raise ConfigError(f"batch_size: {self.batch_size} is not a multiple of workers x accumulate "
                              f"({self.workers} x {self.accumulate})")
        if not (self.lr > 0 and 0 <= self.final_lr_ratio <= 1 and self.weight_decay >= 0):
            raise ConfigError("lr > 0, 0 <= final_lr_ratio <= 1 and weight_decay >= 0 are required")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule: must be one of {SCHEDULES}, not {self.schedule!r}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"precision: must be one of {PRECISIONS}, not {self.precision!r}")
        if self.precision == "bf16" and not self.gpus_per_worker:
            raise ConfigError("precision: bf16 needs GPUs (--gpus-per-worker)")
        if self.checkpoint_every < 1 or self.keep_checkpoints < 1 or self.log_every < 1 or self.val_every < 0:
            raise ConfigError("checkpoint_every, keep_checkpoints, log_every >= 1 and val_every >= 0 are required")
        if self.max_people < 1 or self.max_failures < 0 or self.data_actors < 1 or self.gpus_per_worker < 0:
            raise ConfigError("max_people >= 1, max_failures >= 0, data_actors >= 1, gpus_per_worker >= 0 required")
        for source in self.data:
            if is_local(source.uri) and not os.path.isdir(source.uri):
                raise TrainDataError(f"--data {source.uri}: no such folder")
            if not label_files(source.uri):
                raise TrainDataError(f"--data {source.uri}: no annotation files (labels/*.parquet); give a folder "
                                     "that `meshfleet synth` or `meshfleet pseudo-label` wrote")
        if self.val:
            if is_local(self.val) and not os.path.isdir(join(self.val, "agora")):
                raise ConfigError(f"val: {self.val} has no agora/ layout (make it with `meshfleet synth "
                                  "--size 640x360`: AGORA's layout holds 16:9 images only)")
        if self.init:
            self._check_init()
        check_output(self.output)
        return self

    def _check_init(self) -> None:
        from core.checkpoints import CheckpointError, read_checkpoint

        if is_local(self.init or "") and not os.path.isfile(self.init or ""):
            raise ConfigError(f"init: {self.init} not found")
        _, info = read_checkpoint(self.init or "") if is_local(self.init or "") else (None, None)
        if info is not None and info.network.get("model") != self.model:
            raise CheckpointError(f"init: {self.init} holds a {info.network.get('model')} model, not {self.model}")


def job_identity(cfg: TrainConfig) -> dict:
    """What must match for a rerun to continue an output (steps / epochs may grow)."""
    return {"job": "train", "network": cfg.network.to_dict(), "data": [[d.uri, d.weight] for d in cfg.data],
            "batch_size": cfg.batch_size, "seed": cfg.seed, "init": cfg.init, "body_models": cfg.body_models}


def data_digest(cfg: TrainConfig) -> str:
    """sha256 over the data sets' label file names and sizes, and their weights."""
    sha = hashlib.sha256()
    for source in cfg.data:
        fs, _ = url_to_fs(source.uri)
        sha.update(f"{source.uri}:{source.weight}".encode())
        for name in label_files(source.uri):
            sha.update(f"{os.path.basename(name)}:{fs.size(url_to_fs(name)[1])}".encode())
    return sha.hexdigest()


def latest_checkpoint_step(output: str) -> int:
    """Step of the checkpoint a rerun resumes from (0 if none): the latest one Ray Train registered
    (its checkpoint manager's snapshot, what ``ray.train.get_checkpoint`` returns), else the newest
    complete checkpoint folder under ``OUTPUT/train``."""
    fs, root = url_to_fs(join(output, RUN_DIR))
    if not with_retries(lambda: fs.exists(root), f"stat {root}"):
        return 0
    snapshot = root.rstrip("/") + "/" + SNAPSHOT_FILE
    try:  # Ray-internal format: fall back to the folders if it changes
        latest = json.loads(fs.cat_file(snapshot))["latest_checkpoint_result"]["checkpoint_dir_name"]
        return int(latest.removeprefix(CHECKPOINT_PREFIX))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    steps = [0]
    for path in with_retries(lambda: fs.glob(root.rstrip("/") + f"/{CHECKPOINT_PREFIX}*/{STATE_FILE}"), "list"):
        match = re.search(rf"{CHECKPOINT_PREFIX}(\d+)", path)
        if match:
            steps.append(int(match.group(1)))
    return max(steps)


@dataclass
class TrainSummary:
    start_step: int = 0
    step: int = 0
    total_steps: int = 0
    images: int = 0
    wall_s: float = 0.0
    last: dict = field(default_factory=dict)
    model: str = ""

    def line(self) -> str:
        rate = self.images / self.wall_s if self.wall_s > 0 else 0.0
        loss = self.last.get("loss/total")
        val = "  ".join(f"{k} {v:.3f}" for k, v in self.last.items() if k.startswith("val/") and v == v)
        return (f"steps {self.start_step} -> {self.step} of {self.total_steps}  images {self.images}  "
                f"wall {self.wall_s:.1f}s  {rate:.2f} images/s"
                + (f"  loss {loss:.4g}" if loss is not None else "") + (f"\n{val}" if val else ""))


def total_steps(cfg: TrainConfig, epoch_length: int) -> int:
    return cfg.steps if cfg.steps is not None else -(-(cfg.epochs or 1) * epoch_length // cfg.batch_size)


def run_train(cfg: TrainConfig, progress: Callable[[TrainSummary], None] | None = None,
              on_resume: Callable[[int], None] | None = None) -> TrainSummary:
    """Train (or continue training) ``cfg``; ``progress(summary)`` after each logged step."""
    import ray

    from jobs.infer import ensure_ray
    from jobs.train_loop import sizes_of
    from pipelines.body_model_sets import load_body_model_set
    from pipelines.jobstate import claim_output

    cfg.validate()
    start = time.perf_counter()
    body = load_body_model_set(cfg.body_models, for_bev=cfg.model == "bev")  # fail early on a bad set
    sizes = sizes_of(cfg, body.name)
    ledger = claim_output(cfg.output, "train", job_identity(cfg), cfg.overwrite)
    ledger.declare(folders=[RUN_DIR], files=[METRICS_FILE, MODEL_FILE])  # checkpoints, metrics, the model
    resume = latest_checkpoint_step(cfg.output)
    summary = TrainSummary(start_step=resume, step=resume, total_steps=total_steps(cfg, sum(
        s for s, d in zip(sizes, cfg.data, strict=True) if d.weight > 0)))
    if resume and on_resume:
        on_resume(resume)
    if resume < summary.total_steps:
        started = ensure_ray(cfg.address)
        try:
            _fit_with_progress(cfg, sizes, resume, summary, body.name, progress, start)
        finally:
            if started:
                ray.shutdown()
    summary.step = latest_checkpoint_step(cfg.output)
    summary.model = write_model(cfg, summary.step, body.name)
    summary.wall_s = time.perf_counter() - start
    return summary


def _fit_with_progress(cfg: TrainConfig, sizes: list[int], resume: int, summary: TrainSummary, body_model_set: str,
                       progress: Callable[[TrainSummary], None] | None, start: float) -> None:
    """Run the trainer in a thread; pass the rows rank 0 puts on the queue to ``progress``."""
    from ray.util.queue import Empty, Queue

    from eval.mlflow_log import default_tracking_uri
    from jobs.train_loop import build_trainer

    queue = Queue()
    trainer = build_trainer(cfg, sizes, resume, summary.total_steps, queue, body_model_set,
                            cfg.mlflow_uri or default_tracking_uri())
    outcome: dict = {}
    thread = threading.Thread(target=lambda: outcome.update(result=_fit(trainer)), daemon=True)
    thread.start()
    while thread.is_alive() or not queue.empty():
        try:
            event = queue.get(timeout=0.5)
        except Empty:
            continue
        summary.step, summary.last = int(event["step"]), event
        summary.images = (summary.step - summary.start_step) * cfg.batch_size
        summary.wall_s = time.perf_counter() - start
        if progress:
            progress(summary)
    thread.join()
    if isinstance(outcome.get("result"), BaseException):
        raise outcome["result"]


def _fit(trainer):  # returns the exception instead of raising it in the thread
    try:
        return trainer.fit()
    except BaseException as err:  # noqa: BLE001 -- re-raised by the caller
        return err


def write_model(cfg: TrainConfig, step: int, body_model_set: str) -> str:
    """``OUTPUT/model.pth`` from the checkpoint of ``step``: the network's state_dict and its
    :class:`~core.checkpoints.CheckpointInfo`; also ``OUTPUT/metrics.jsonl``, and the model as an
    artifact of the run's MLflow run."""
    from core.checkpoints import CheckpointInfo, save_checkpoint
    from jobs.specs import to_dict
    from jobs.train_loop import read_state

    if step == 0:
        raise RuntimeError(f"{cfg.output}: training ended without a checkpoint")
    state = read_state(cfg.output, step)
    info = CheckpointInfo(network=cfg.network.to_dict(), body_model_set=body_model_set, root_align=True,
                          training=to_dict(cfg), data_digest=data_digest(cfg), step=int(state["step"]))
    target = join(cfg.output, MODEL_FILE)
    with tempfile.TemporaryDirectory() as tmp:
        local = save_checkpoint(os.path.join(tmp, MODEL_FILE), state["model"], info)
        write_bytes_atomic(target, local.read_bytes())
        if state.get("mlflow_run_id") and cfg.use_mlflow:
            _log_artifact(cfg, str(state["mlflow_run_id"]), str(local))
    write_bytes_atomic(join(cfg.output, METRICS_FILE),
                       "".join(json.dumps(row) + "\n" for row in state.get("history", [])).encode())
    return target


def _log_artifact(cfg: TrainConfig, run_id: str, path: str) -> None:
    from mlflow.tracking import MlflowClient

    from eval.mlflow_log import default_tracking_uri

    try:
        MlflowClient(cfg.mlflow_uri or default_tracking_uri()).log_artifact(run_id, path)
    except Exception as err:  # noqa: BLE001 -- the model is written; a tracking server problem is a warning
        log.warning("could not log %s to MLflow run %s: %s", path, run_id, err)
