"""The Ray Train side of ``meshfleet train``: the datasets and trainer the driver builds, and the loop
every worker runs.

Data parallelism: every worker computes the gradients of its own slice of the global batch and the
workers average them with one ``torch.distributed`` all-reduce per step (gloo on CPU, NCCL on GPU)
-- what ``DistributedDataParallel`` does, done by hand because BEV's objective calls network
methods other than ``forward`` (which DDP's hooks need). Weights start equal (rank 0's are
broadcast). Rank 0 writes the checkpoints, the metrics file and the MLflow run, and validates.
"""

from __future__ import annotations

import io
import json
import os
import tempfile
import time
from contextlib import nullcontext
from typing import Any

import numpy as np
import torch

from core.train.schedule import default_warmup, lr_factor
from jobs.train import (
    CHECKPOINT_PREFIX,
    METRICS_FILE,
    RUN_DIR,
    STATE_FILE,
    TrainConfig,
)
from pipelines.storage import join, read_bytes, write_bytes_atomic
from pipelines.train_data import TrainDataError, plan_samples, rank_rows, read_label_set

PLAN_COLUMNS = ("index", "set", "image", "epoch")
VAL_KEYS = ("f1", "precision", "recall", "mpjpe", "mve", "nmje")


def sizes_of(cfg: TrainConfig, body_model_set: str) -> list[int]:
    """Images per data set; refuses labels made on another body-model set than ``--body-models``."""
    sizes = []
    for source in cfg.data:
        labels = read_label_set(source.uri)
        if labels.body_model_set and labels.body_model_set != body_model_set:
            raise TrainDataError(f"--data {source.uri}: labels are on the body-model set {labels.body_model_set!r}, "
                                 f"--body-models gives {body_model_set!r}")
        sizes.append(labels.size)
    return sizes


def rank_datasets(cfg: TrainConfig, sizes: list[int], start_step: int, total: int) -> dict[str, Any]:
    """One Ray Data stream per worker: its slice of the plan of steps [start_step, total), mapped to
    batch rows by :class:`~pipelines.train_data.SampleMaker` (order preserved)."""
    import pandas as pd
    import ray

    from pipelines.train_data import SampleMaker

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # the plan's order is the training order
    weights = [d.weight for d in cfg.data]
    plan = plan_samples(sizes, weights, cfg.seed, start_step * cfg.batch_size, total * cfg.batch_size)
    datasets = {}
    for rank in range(cfg.workers):
        rows = pd.DataFrame(rank_rows(plan, cfg.worker_batch, cfg.workers, rank), columns=list(PLAN_COLUMNS))
        datasets[f"train_{rank}"] = ray.data.from_pandas(rows).map_batches(
            SampleMaker, batch_size=cfg.worker_batch, compute=ray.data.ActorPoolStrategy(size=cfg.data_actors),
            num_cpus=cfg.data_cpus,
            batch_format="numpy",
            fn_constructor_kwargs={"uris": [d.uri for d in cfg.data], "input_size": cfg.input_size,
                                   "max_people": cfg.max_people, "seed": cfg.seed, "augment_config": cfg.augment})
    return datasets


def build_trainer(cfg: TrainConfig, sizes: list[int], start_step: int, total: int, queue: Any,
                  body_model_set: str, tracking_uri: str) -> Any:
    """The ``TorchTrainer`` of ``cfg`` (Ray Train V2)."""
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    use_gpu = cfg.gpus_per_worker > 0
    resources = {"CPU": cfg.cpus_per_worker, **({"GPU": cfg.gpus_per_worker} if use_gpu else {})}
    loop_config = {"cfg": cfg, "total": total, "start_step": start_step, "queue": queue,
                   "body_model_set": body_model_set, "tracking_uri": tracking_uri}
    return TorchTrainer(
        train_worker, train_loop_config=loop_config,
        scaling_config=ScalingConfig(num_workers=cfg.workers, use_gpu=use_gpu, resources_per_worker=resources),
        run_config=RunConfig(name=RUN_DIR, storage_path=cfg.output,
                             checkpoint_config=CheckpointConfig(num_to_keep=cfg.keep_checkpoints),
                             failure_config=FailureConfig(max_failures=cfg.max_failures)),
        datasets=rank_datasets(cfg, sizes, start_step, total),
        dataset_config=DataConfig(datasets_to_split=[]),
    )


# -- the worker --------------------------------------------------------------------------------------

def _all_reduce_grads(params: list[torch.nn.Parameter], world: int) -> None:
    import torch.distributed as dist

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for p, g in zip(params, grads, strict=True):
        p.grad = flat[offset:offset + g.numel()].view_as(g).clone()
        offset += g.numel()


def _mean_over_workers(values: dict[str, float], world: int, device: torch.device) -> dict[str, float]:
    if world == 1:
        return values
    import torch.distributed as dist

    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=device)
    dist.all_reduce(tensor)
    return {k: float(v) / world for k, v in zip(keys, tensor.tolist(), strict=True)}


def _initial_weights(cfg: TrainConfig, net: torch.nn.Module) -> None:
    from core.models import load_checkpoint
    from pipelines.storage import localize

    if cfg.init:
        loaded = load_checkpoint(localize(cfg.init), cfg.model)
        if loaded.info is not None and loaded.info.network != cfg.network.to_dict():
            raise TrainDataError(f"init: {cfg.init} is a {loaded.info.network}, not {cfg.network.to_dict()}")
        net.load_state_dict(loaded.network.state_dict())


def train_worker(config: dict) -> None:
    """Ray Train's per-worker function (see the module doc)."""
    import ray.train
    import ray.train.torch

    from core.models import build_network
    from core.train.batch import TrainBatch
    from core.train.objective import ObjectiveConfig, compute_losses, forward_dense, make_targets
    from pipelines.body_model_sets import load_body_model_set

    cfg: TrainConfig = config["cfg"]
    total, queue = int(config["total"]), config["queue"]
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    # default: this node's cores shared by its workers (the data stage's threads mostly wait on I/O)
    torch.set_num_threads(cfg.threads or max(1, (os.cpu_count() or 1) // context.get_local_world_size()))
    torch.manual_seed(cfg.seed)
    device = ray.train.torch.get_device()
    net = build_network(cfg.network)
    optimiser = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    state = _restore(net, optimiser)
    if state is None:
        _initial_weights(cfg, net)
    if world > 1 and device.type == "cuda":  # one BatchNorm batch over all workers (CUDA only in torch)
        net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
    net = net.to(device).train()
    params = [p for p in net.parameters() if p.requires_grad]
    if world > 1:
        import torch.distributed as dist

        for tensor in net.state_dict().values():  # identical start on every worker
            dist.broadcast(tensor, 0)
    step = int(state["step"]) if state else 0
    history: list[dict] = list(state.get("history", [])) if state else []
    run_id = _start_mlflow(cfg, config["tracking_uri"], state) if rank == 0 and cfg.use_mlflow else None
    body_set = load_body_model_set(cfg.body_models, for_bev=cfg.model == "bev")
    body = (body_set.smpl if cfg.model == "romp" else body_set.smpla).to(device)  # type: ignore[union-attr]
    objective = ObjectiveConfig.official(cfg.model, match_to_peaks=cfg.match_to_peaks)
    warmup = cfg.warmup_steps if cfg.warmup_steps >= 0 else default_warmup(total)
    autocast = (torch.autocast(device_type=device.type, dtype=torch.bfloat16)
                if cfg.precision == "bf16" or (cfg.precision == "auto" and device.type == "cuda") else nullcontext())

    shard = ray.train.get_dataset_shard(f"train_{rank}")
    batches = iter(shard.iter_torch_batches(batch_size=cfg.worker_batch, drop_last=False))
    # after a worker-group restart the shard starts again at the driver's start step: skip what is done
    for _ in range((step - int(config["start_step"])) * cfg.accumulate):
        next(batches)
    sums: dict[str, float] = {}
    tick, tick_step, count = time.perf_counter(), step, 0.0
    while step < total:
        lr = cfg.lr * lr_factor(step, total, warmup, cfg.schedule, cfg.final_lr_ratio)
        for group in optimiser.param_groups:
            group["lr"] = lr
        optimiser.zero_grad(set_to_none=True)
        for _ in range(cfg.accumulate):
            batch = TrainBatch.from_arrays(next(batches)).to(device)
            with autocast:
                dense = forward_dense(net, batch.image)
                terms = compute_losses(net, dense, make_targets(net, batch, objective), batch, body, objective)
            (terms.total / cfg.accumulate).backward()
            for name, value in {"total": terms.total, **terms.weighted}.items():
                sums[name] = sums.get(name, 0.0) + float(value.detach()) / cfg.accumulate
            count += 1 / cfg.accumulate
        if world > 1:
            _all_reduce_grads(params, world)
        optimiser.step()
        step += 1
        checkpoint_now = step % cfg.checkpoint_every == 0 or step == total
        val_now = bool(cfg.val) and (step == total or (step % cfg.val_every == 0 if cfg.val_every
                                                       else checkpoint_now))
        if step % cfg.log_every == 0 or checkpoint_now:
            losses = _mean_over_workers({f"loss/{k}": v / max(count, 1e-9) for k, v in sums.items()}, world, device)
            elapsed = time.perf_counter() - tick
            row = {"step": step, "lr": lr, **losses,
                   "images_per_s": (step - tick_step) * cfg.batch_size / max(elapsed, 1e-9), "time": time.time()}
            if val_now and rank == 0:
                row.update(validate(cfg, net, step, config["body_model_set"]))
            if rank == 0:
                history.append(row)
                _log_mlflow(run_id, row, step)
                queue.put(row)
            tick, tick_step, sums, count = time.perf_counter(), step, {}, 0.0
        if checkpoint_now:
            _report_checkpoint(cfg, net, optimiser, step, history, run_id, rank)
    if run_id is not None:
        import mlflow

        mlflow.end_run()


def _restore(net: torch.nn.Module, optimiser: torch.optim.Optimizer) -> dict | None:
    import ray.train

    checkpoint = ray.train.get_checkpoint()
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as folder:
        state = torch.load(os.path.join(folder, STATE_FILE), map_location="cpu", weights_only=True)
    net.load_state_dict(state["model"])
    optimiser.load_state_dict(state["optimiser"])
    return state


def _report_checkpoint(cfg: TrainConfig, net: torch.nn.Module, optimiser: torch.optim.Optimizer, step: int,
                       history: list[dict], run_id: str | None, rank: int) -> None:
    """Every worker reports (a barrier); rank 0 hands over the checkpoint and rewrites the metrics file."""
    import ray.train

    metrics = {"step": step, **(history[-1] if history else {})}
    name = f"{CHECKPOINT_PREFIX}{step:08d}"
    if rank != 0:
        ray.train.report(metrics, checkpoint=None, checkpoint_dir_name=name)
        return
    write_bytes_atomic(join(cfg.output, METRICS_FILE), "".join(json.dumps(r) + "\n" for r in history).encode())
    with tempfile.TemporaryDirectory() as folder:
        state = {"step": step, "model": {k: v.detach().cpu() for k, v in net.state_dict().items()},
                 "optimiser": optimiser.state_dict(), "history": history, "mlflow_run_id": run_id or ""}
        torch.save(state, os.path.join(folder, STATE_FILE))
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(folder), checkpoint_dir_name=name)


def read_state(output: str, step: int) -> dict:
    """The training state saved at ``step`` under ``output``."""
    path = join(join(join(output, RUN_DIR), f"{CHECKPOINT_PREFIX}{step:08d}"), STATE_FILE)
    return torch.load(io.BytesIO(read_bytes(path)), map_location="cpu", weights_only=True)


# -- MLflow and validation (rank 0) ---------------------------------------------------------------------

def _start_mlflow(cfg: TrainConfig, tracking_uri: str, state: dict | None) -> str:
    import mlflow

    from eval.mlflow_log import artifact_location
    from jobs.specs import to_dict

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    mlflow.set_tracking_uri(tracking_uri)
    if mlflow.get_experiment_by_name(cfg.experiment) is None:
        mlflow.create_experiment(cfg.experiment, artifact_location=artifact_location(tracking_uri))
    mlflow.set_experiment(cfg.experiment)
    previous = (state or {}).get("mlflow_run_id") or None
    run = mlflow.start_run(run_id=previous, run_name=None if previous else os.path.basename(cfg.output))
    if not previous:
        flat = {k: (json.dumps(v) if isinstance(v, (dict, list)) else v) for k, v in to_dict(cfg).items()}
        mlflow.log_params(flat)
        mlflow.set_tags({"job": "train", "model": cfg.model, "backbone": cfg.backbone})
    return run.info.run_id


def _log_mlflow(run_id: str | None, row: dict, step: int) -> None:
    if run_id is None:
        return
    import mlflow

    mlflow.log_metrics({k: float(v) for k, v in row.items()
                        if k not in ("step", "time") and isinstance(v, (int, float)) and v == v}, step=step)


def validate(cfg: TrainConfig, net: torch.nn.Module, step: int, body_model_set: str) -> dict[str, float]:
    """Run meshfleet's own inference on ``cfg.val``'s images with the current weights and score them
    with the AGORA evaluator (``meshfleet eval agora``, official protocol) -> ``val/<metric>``."""
    from core.checkpoints import CheckpointInfo, save_checkpoint
    from eval.agora import evaluate
    from eval.common import EvalConfig
    from jobs.config import InferConfig
    from jobs.infer import run_infer

    assert cfg.val is not None
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        info = CheckpointInfo(network=cfg.network.to_dict(), body_model_set=body_model_set, step=step)
        checkpoint = save_checkpoint(os.path.join(tmp, "model.pth"), net.state_dict(), info)
        results = os.path.join(tmp, "results")
        infer = InferConfig(inputs=(join(cfg.val, "images"),), model=cfg.model, checkpoint=str(checkpoint),
                            body_models=cfg.body_models, output=results, use_ray=False)
        run_infer(infer)
        metrics = evaluate(EvalConfig("agora", predictions=results, data=join(cfg.val, "agora"),
                                      body_models=cfg.body_models)).metrics
    net.train()
    out = {f"val/{k}": float(metrics[k]) for k in VAL_KEYS if k in metrics}
    out["val/seconds"] = time.perf_counter() - start
    return {k: (v if np.isfinite(v) else float("nan")) for k, v in out.items()}
