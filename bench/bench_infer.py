"""Throughput of ``meshfleet infer`` end to end, against two baselines in the same process.

    .venv/bin/python bench/bench_infer.py --model romp --images 32 --batch-size 8

1. bare network: the network alone on already pre-processed 512x512 inputs resident on the
   device, in batches of ``--batch-size`` (an upper bound for any pipeline);
2. end to end: ``meshfleet infer`` over a folder of JPEGs (planning, decode, pad + resize, network,
   parsing, SMPL, cameras, Parquet writing), both as the streaming Ray job (embedded Ray started
   and stopped inside the timing, as a user's run does) and with ``--no-ray``;
3. one image per call: ``cv2.imread`` + ``Predictor.predict([image])`` per image, the way the
   official ``simple_romp`` wrappers run.

Reported as frames/s and as ratios (end to end / bare network, end to end / one per call).
Without official weights it uses a random checkpoint and synthetic SMPL files: the network cost
is the same, but the number of people detected (and so the SMPL / PnP cost) is not realistic.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from core.body_models import BodyModelSet
from core.models import load_network
from core.predictor import Predictor
from core.settings import PredictorSettings
from jobs.config import InferConfig
from jobs.infer import run_infer
from jobs.synthetic import draw_scene, write_random_checkpoint, write_synthetic_body_models


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_bare_network(predictor: Predictor, inputs: np.ndarray, batch_size: int) -> float:
    """Seconds for the network alone over ``inputs`` (already on the device)."""
    device = predictor.device
    x = torch.from_numpy(inputs).to(device).float()
    model = predictor.model
    with torch.inference_mode(), predictor._autocast():
        _sync(device)
        start = time.perf_counter()
        for i in range(0, len(x), batch_size):
            chunk = x[i:i + batch_size]
            if predictor.kind == "romp":
                model(chunk)
            else:
                model.forward_maps(chunk)  # type: ignore[operator]
        _sync(device)
    return time.perf_counter() - start


def bench_one_per_call(predictor: Predictor, paths: list[Path]) -> float:
    start = time.perf_counter()
    for path in paths:
        predictor.predict([cv2.imread(str(path))])
    _sync(predictor.device)
    return time.perf_counter() - start


def bench_end_to_end(cfg: InferConfig) -> float:
    start = time.perf_counter()
    run_infer(cfg)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["romp", "bev"], default="romp")
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--batch-size", type=int, default=None, help="default: 16 on CUDA, 1 on CPU")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--checkpoint", type=Path, help="real checkpoint (default: random, official layout)")
    parser.add_argument("--body-models", type=Path, help="real body-model folder (default: synthetic)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="meshfleet-bench-"))
    body_dir = args.body_models or write_synthetic_body_models(work / "body_models")
    ckpt = args.checkpoint or write_random_checkpoint(args.model, work / f"{args.model}.ckpt")
    corpus = work / "corpus"
    corpus.mkdir()
    paths = []
    for i in range(args.images):
        paths.append(corpus / f"{i:05d}.jpg")
        cv2.imwrite(str(paths[-1]), draw_scene(args.height, args.width, 3, seed=i))

    settings = PredictorSettings(device=args.device, batch_size=args.batch_size, precision=args.precision,
                                 crowd=False)
    network, _ = load_network(args.model, ckpt)
    predictor = Predictor(network, BodyModelSet.from_dir(body_dir, for_bev=args.model == "bev"), settings)
    inputs = predictor.prepare([cv2.imread(str(p)) for p in paths]).inputs
    single = Predictor(network, predictor.body_models, PredictorSettings(
        device=args.device, batch_size=1, precision=args.precision, crowd=False))

    def infer_cfg(run: int, use_ray: bool) -> InferConfig:
        return InferConfig(inputs=(str(corpus),), model=args.model, checkpoint=str(ckpt),
                           body_models=str(body_dir), output=str(work / f"out{run}-{use_ray}"), settings=settings,
                           overwrite=True, use_ray=use_ray)

    batch = predictor.batch_size
    bench_bare_network(predictor, inputs[:batch], batch)  # warm-up
    predictor.predict([cv2.imread(str(paths[0]))])
    times: dict[str, list[float]] = {"bare_network": [], "end_to_end": [], "end_to_end_no_ray": [],
                                     "one_per_call": []}
    for run in range(args.repeats):
        times["bare_network"].append(bench_bare_network(predictor, inputs, batch))
        times["end_to_end"].append(bench_end_to_end(infer_cfg(run, True)))
        times["end_to_end_no_ray"].append(bench_end_to_end(infer_cfg(run, False)))
        times["one_per_call"].append(bench_one_per_call(single, paths))
    fps = {k: args.images / statistics.median(v) for k, v in times.items()}
    result = {
        "model": args.model, "device": str(predictor.device), "precision": args.precision,
        "images": args.images, "image_size": [args.height, args.width], "batch_size": batch,
        "repeats": args.repeats, "torch_threads": torch.get_num_threads(),
        "frames_per_s": {k: round(v, 3) for k, v in fps.items()},
        "ratio_end_to_end_vs_bare_network": round(fps["end_to_end"] / fps["bare_network"], 3),
        "ratio_end_to_end_vs_one_per_call": round(fps["end_to_end"] / fps["one_per_call"], 3),
        "ratio_no_ray_vs_bare_network": round(fps["end_to_end_no_ray"] / fps["bare_network"], 3),
        "ratio_no_ray_vs_one_per_call": round(fps["end_to_end_no_ray"] / fps["one_per_call"], 3),
        "seconds": {k: [round(t, 3) for t in v] for k, v in times.items()},
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
