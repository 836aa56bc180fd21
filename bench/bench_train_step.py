"""Training throughput: images/s of forward + backward + Adam step, per network and input size.

    .venv/bin/python bench/bench_train_step.py                      # the default grid, CPU
    .venv/bin/python bench/bench_train_step.py --configs romp:small:256 bev:small:256 --full
    .venv/bin/python bench/bench_train_step.py --device cuda --precision bf16 --configs bev:hrnet32:512

``network`` times the network alone (a loss that touches every output map, as the reference
table of open-body-model.md 4 measured: batch 8, 2 threads); ``--full`` also times the whole
objective (targets, body model, every loss) on synthetic stick-figure batches with exact labels.
Numbers are medians over ``--iters`` steps after one warm-up step; the machine may be shared.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from core.body_models import BodyModelSet
from core.models import build_network
from core.nets.config import NetworkConfig
from core.train.augment import AugmentPlan, apply_plan
from core.train.batch import TrainBatch, collate, sample_arrays
from core.train.objective import ObjectiveConfig, compute_losses, forward_dense, make_targets
from jobs.synthetic import labelled_stick_figures, write_synthetic_body_models

DEFAULT_CONFIGS = ("romp:small:192", "romp:small:256", "bev:small:256", "romp:hrnet32:256", "romp:hrnet32:512")


def parse_config(text: str) -> NetworkConfig:
    model, backbone, size = text.split(":")
    return NetworkConfig(model, backbone, int(size))


def synthetic_batch(body_models: BodyModelSet, size: int, batch: int) -> TrainBatch:
    rng = np.random.default_rng(0)
    rows = []
    for _ in range(batch):
        image, labels = labelled_stick_figures(body_models, rng, size, size, 3)
        rows.append(sample_arrays(apply_plan(image, labels, AugmentPlan(), size), 4))
    return TrainBatch.from_arrays(collate(rows))


def time_steps(step, iters: int, device: torch.device) -> float:
    step()  # warm-up
    times = []
    for _ in range(iters):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        start = time.perf_counter()
        step()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench(config: NetworkConfig, args: argparse.Namespace, body_models: BodyModelSet | None) -> dict:
    device = torch.device(args.device)
    net = build_network(config).to(device).train()
    if args.channels_last:
        net.backbone.channels_last = True
        net = net.to(memory_format=torch.channels_last)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-5)
    autocast = (torch.autocast(device_type=device.type, dtype=torch.bfloat16) if args.precision == "bf16"
                else nullcontext())
    images = torch.randint(0, 255, (args.batch, config.input_size, config.input_size, 3), device=device).float()

    def network_step() -> None:
        with autocast:
            dense = forward_dense(net, images)
            outputs = [dense.center_map, dense.params_map] if dense.bev is None else [
                dense.bev.center_3d, dense.bev.cam_3d, dense.bev.features, dense.center_map]
            loss = sum(o.float().mean() for o in outputs if o is not None)
        optimiser.zero_grad()
        loss.backward()  # type: ignore[union-attr]
        optimiser.step()

    row = {"model": config.model, "backbone": config.backbone, "input": config.input_size, "map": config.map_size,
           "batch": args.batch, "params_m": round(sum(p.numel() for p in net.parameters()) / 1e6, 2),
           "threads": torch.get_num_threads(), "device": args.device, "precision": args.precision}
    row["network_img_s"] = round(args.batch / time_steps(network_step, args.iters, device), 2)
    if args.full and body_models is not None:
        batch = synthetic_batch(body_models, config.input_size, args.batch).to(device)
        objective = ObjectiveConfig.official(config.model)
        body = (body_models.smpl if config.model == "romp" else body_models.smpla).to(device)  # type: ignore[union-attr]

        def full_step() -> None:
            with autocast:
                dense = forward_dense(net, batch.image)
                terms = compute_losses(net, dense, make_targets(net, batch, objective), batch, body, objective)
            optimiser.zero_grad()
            terms.total.backward()
            optimiser.step()

        row["full_step_img_s"] = round(args.batch / time_steps(full_step, args.iters, device), 2)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--configs", nargs="+", default=list(DEFAULT_CONFIGS), help="model:backbone:input_size")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="fp32")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--full", action="store_true", help="also time the whole objective")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    body_models = None
    if args.full:
        body_models = BodyModelSet.from_dir(write_synthetic_body_models(Path(tempfile.mkdtemp()), seed=0), for_bev=True)
    for text in args.configs:
        print(json.dumps(bench(parse_config(text), args, body_models)), flush=True)


if __name__ == "__main__":
    main()
