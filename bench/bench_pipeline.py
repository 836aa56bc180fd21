"""Throughput of ``meshfleet infer`` against the bare network, in one run, on one corpus.

    .venv/bin/python bench/bench_pipeline.py                      # 16 JPEGs + a 96-frame video
    .venv/bin/python bench/bench_pipeline.py --video-frames 984   # 1,000 frames

The corpus is generated: ``--images`` JPEGs and one video of ``--video-frames`` frames, all
``--height`` x ``--width`` (640x480), ROMP (or BEV) with random weights in the official layout and
synthetic SMPL files -- the network cost is that of the real model; the people found (and so the
SMPL / PnP cost) are not realistic. Measured, one after the other, in the same run:

1. ``bare network``: the network alone on the corpus's frames already pre-processed and resident on
   the device, in batches of the size meshfleet uses there (no start-up: an upper bound);
2. ``--no-ray``: ``meshfleet infer --no-ray`` as a user runs it, in a fresh process, wall time from
   launch to exit (imports, model load, planning, decode, network, parsing, SMPL, Parquet);
3. ``ray``: ``meshfleet infer --ray`` the same way, on the embedded Ray that the command starts.

The three are interleaved over ``--rounds`` rounds, so that a change of load on a shared machine
hits every path; it prints each path's seconds per round, frames/s and its ratio to the bare network
(median over the rounds of the per-round ratios; ``--json`` writes them too). ``--stats`` also prints
Ray Data's per-operator statistics of the last Ray run. Public tools only (the ``meshfleet``
command and torch).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import torch

from core.body_models import BodyModelSet
from core.models import load_network
from core.predictor import Predictor
from core.settings import PredictorSettings
from jobs.synthetic import draw_scene, write_random_checkpoint, write_synthetic_body_models, write_video

ROOT = Path(__file__).resolve().parents[1]


def make_corpus(work: Path, images: int, video_frames: int, height: int, width: int) -> tuple[Path, list[Path]]:
    corpus = work / "corpus"
    corpus.mkdir(parents=True)
    paths = []
    for i in range(images):
        paths.append(corpus / f"{i:05d}.jpg")
        cv2.imwrite(str(paths[-1]), draw_scene(height, width, 3, seed=i))
    if video_frames:
        write_video(corpus / "clip.mp4", [draw_scene(height, width, 3, seed=1000 + i) for i in range(video_frames)])
    return corpus, paths


def corpus_frames(corpus: Path) -> list:
    frames = [cv2.imread(str(p)) for p in sorted(corpus.glob("*.jpg"))]
    cap = cv2.VideoCapture(str(corpus / "clip.mp4"))
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames


def bare_network(predictor: Predictor, frames: list) -> float:
    """Seconds for the network alone over every frame, pre-processed beforehand (not timed)."""
    inputs = torch.from_numpy(predictor.prepare(frames).inputs).to(predictor.device)
    step = predictor.batch_size
    model = predictor.model
    with torch.inference_mode():
        model(inputs[:step].float()) if predictor.kind == "romp" else model.forward_maps(inputs[:step].float())
        start = time.perf_counter()
        for i in range(0, len(inputs), step):
            chunk = inputs[i:i + step].float()
            model(chunk) if predictor.kind == "romp" else model.forward_maps(chunk)
        if predictor.device.type == "cuda":
            torch.cuda.synchronize(predictor.device)
    return time.perf_counter() - start


def cli(args: argparse.Namespace, corpus: Path, ckpt: Path, body: Path, out: Path, mode: str) -> tuple[float, str]:
    """Wall seconds of ``meshfleet infer`` in a fresh process, and its stderr."""
    command = [sys.executable, "-m", "jobs.cli", "infer", str(corpus), "--model", args.model, "--checkpoint",
               str(ckpt), "--body-models", str(body), "--output", str(out), "--device", args.device,
               "--no-crowd", f"--{mode}"]
    if args.stats and mode == "ray":
        command.append("-v")
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"meshfleet infer --{mode} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return seconds, done.stderr


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["romp", "bev"], default="romp")
    parser.add_argument("--images", type=int, default=16)
    parser.add_argument("--video-frames", type=int, default=96)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the three measurements, interleaved")
    parser.add_argument("--stats", action="store_true", help="print Ray Data's statistics of the last Ray run")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="meshfleet-bench-"))
    body = write_synthetic_body_models(work / "body_models")
    ckpt = write_random_checkpoint(args.model, work / ("ROMP.pkl" if args.model == "romp" else "BEV.pth"))
    corpus, _ = make_corpus(work, args.images, args.video_frames, args.height, args.width)
    frames = corpus_frames(corpus)
    settings = PredictorSettings(device=args.device, crowd=False)
    predictor = Predictor(load_network(args.model, ckpt)[0], BodyModelSet.from_dir(body, for_bev=args.model == "bev"),
                          settings)
    paths = ("bare network", "--no-ray", "ray")
    seconds: dict[str, list[float]] = {name: [] for name in paths}
    load = [os.getloadavg()[0]]
    log = ""
    for r in range(args.rounds):  # interleaved, so that a change of load on a shared machine hits every path
        seconds["bare network"].append(bare_network(predictor, frames))
        seconds["--no-ray"].append(cli(args, corpus, ckpt, body, work / f"out-no-ray-{r}", "no-ray")[0])
        elapsed, log = cli(args, corpus, ckpt, body, work / f"out-ray-{r}", "ray")
        seconds["ray"].append(elapsed)
        load.append(os.getloadavg()[0])
    median = {k: statistics.median(v) for k, v in seconds.items()}
    ratios = {k: statistics.median(b / x for b, x in zip(seconds["bare network"], v, strict=True))
              for k, v in seconds.items()}
    machine = (f"{platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
               f"({torch.get_num_threads()} threads)")
    print(f"\n{args.model}, {len(frames)} frames ({args.images} JPEGs + a {args.video_frames}-frame video, "
          f"{args.width}x{args.height}), device {args.device}; {machine}; {args.rounds} rounds; "
          f"load average {' / '.join(f'{v:.1f}' for v in load)}")
    print("| path | seconds per round | frames/s (median) | x bare network (median of rounds) |\n|---|---|---|---|")
    for name in paths:
        runs = ", ".join(f"{v:.1f}" for v in seconds[name])
        print(f"| {name} | {runs} | {len(frames) / median[name]:.3f} | {ratios[name]:.2f} |")
    if args.stats:
        print(log[log.find("Ray Data execution"):] if "Ray Data execution" in log else log[-4000:])
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"model": args.model, "frames": len(frames), "seconds": seconds,
                                         "ratio_to_bare_network": ratios, "machine": machine, "load": load},
                                        indent=2))


if __name__ == "__main__":
    main()
