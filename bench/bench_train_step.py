"""Training throughput: images/s of forward + backward + Adam step, per network and input size.

    .venv/bin/python bench/bench_train_step.py                      # the default grid, CPU
    .venv/bin/python bench/bench_train_step.py --configs romp:small:256 bev:small:256 --full
    .venv/bin/python bench/bench_train_step.py --device cuda --precision bf16 --configs bev:hrnet32:512

``network`` times the network alone (a loss that touches every output map, as the reference
table of open-body-model.md 4 measured: batch 8, 2 threads); ``--full`` also times the whole
objective (targets, body model, every loss) on synthetic stick-figure batches with exact labels.
Numbers are medians over ``--iters`` steps after one warm-up step.

The configurations take turns step by step, so that on a shared machine they see the same load;
``vs_first`` is each one's speed relative to the first configuration (default: HRNet-32 ROMP at
256 px, which the reference table measured at 1.65 images/s on a quiet 2-core machine).
"""

from __future__ import annotations

import argparse
import json
import os
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

DEFAULT_CONFIGS = ("romp:hrnet32:256", "romp:small:256", "bev:small:256", "romp:small:192", "bev:hrnet32:256")


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


def make_steps(config: NetworkConfig, args: argparse.Namespace, body_models: BodyModelSet | None) -> dict:
    """The row describing ``config`` and its step functions (network alone, whole objective)."""
    device = torch.device(args.device)
    net = build_network(config).to(device).train()
    if args.channels_last:
        net.backbone.channels_last = True
        net = net.to(memory_format=torch.channels_last)
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-5)

    def autocast():
        return (torch.autocast(device_type=device.type, dtype=torch.bfloat16) if args.precision == "bf16"
                else nullcontext())

    images = torch.randint(0, 255, (args.batch, config.input_size, config.input_size, 3), device=device).float()

    def network_step() -> None:
        with autocast():
            dense = forward_dense(net, images)
            outputs = [dense.center_map, dense.params_map] if dense.bev is None else [
                dense.bev.center_3d, dense.bev.cam_3d, dense.bev.features, dense.center_map]
            loss = sum(o.float().mean() for o in outputs if o is not None)
        optimiser.zero_grad()
        loss.backward()  # type: ignore[union-attr]
        optimiser.step()

    steps = {"network": network_step}
    if args.full and body_models is not None:
        batch = synthetic_batch(body_models, config.input_size, args.batch).to(device)
        objective = ObjectiveConfig.official(config.model)
        body = (body_models.smpl if config.model == "romp" else body_models.smpla).to(device)  # type: ignore[union-attr]

        def full_step() -> None:
            with autocast():
                dense = forward_dense(net, batch.image)
                terms = compute_losses(net, dense, make_targets(net, batch, objective), batch, body, objective)
            optimiser.zero_grad()
            terms.total.backward()
            optimiser.step()

        steps["full_step"] = full_step
    row = {"model": config.model, "backbone": config.backbone, "input": config.input_size, "map": config.map_size,
           "batch": args.batch, "params_m": round(sum(p.numel() for p in net.parameters()) / 1e6, 2),
           "threads": torch.get_num_threads(), "device": args.device, "precision": args.precision}
    return {"row": row, "steps": steps}


def timed(step, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    step()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return time.perf_counter() - start


def run_interleaved(entries: list[dict], args: argparse.Namespace) -> None:
    """One warm-up step each, then ``iters`` rounds in which every configuration takes one step."""
    device = torch.device(args.device)
    for kind in entries[0]["steps"]:
        times: list[list[float]] = [[] for _ in entries]
        for entry in entries:
            entry["steps"][kind]()
        for _ in range(args.iters):
            for k, entry in enumerate(entries):
                times[k].append(timed(entry["steps"][kind], device))
        first = statistics.median(times[0])
        for k, entry in enumerate(entries):
            median = statistics.median(times[k])
            entry["row"][f"{kind}_img_s"] = round(args.batch / median, 2)
            entry["row"][f"{kind}_vs_first"] = round(first / median, 2)


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
    entries = [make_steps(parse_config(text), args, body_models) for text in args.configs]
    run_interleaved(entries, args)
    print("load average at the end:", " ".join(f"{v:.1f}" for v in os.getloadavg()))
    for entry in entries:
        print(json.dumps(entry["row"]), flush=True)


if __name__ == "__main__":
    main()
