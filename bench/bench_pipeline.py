"""Ray pipeline throughput against the direct Predictor on the same inputs, in one process.

    .venv/bin/python bench/bench_pipeline.py --model romp --images 24 --video-frames 24

1. direct: ``cv2`` decode + ``Predictor.predict`` frame batches, no Ray, no writing;
2. stages: the job's stages run sequentially (``--no-ray``): planning, decode, predict, Parquet;
3. ray: the streaming Ray Data job (embedded Ray, already started, so its start-up is excluded).

Prints a table of frames/s and overhead ratios (direct / pipeline). With ``--precision bf16``
on a GPU it also reports the GPU utilisation sampled with ``nvidia-smi`` during the Ray run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import cv2

from core.settings import PredictorSettings
from jobs.config import InferConfig
from jobs.infer import ensure_ray, run_infer
from jobs.synthetic import draw_scene, write_random_checkpoint, write_synthetic_body_models, write_video
from pipelines.ray_job import ModelSpec, Resources


def direct(spec: ModelSpec, images: list[Path], video: Path) -> float:
    predictor = spec.build()
    start = time.perf_counter()
    frames = [cv2.imread(str(p)) for p in images]
    cap = cv2.VideoCapture(str(video))
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    for i in range(0, len(frames), predictor.batch_size):
        predictor.predict(frames[i:i + predictor.batch_size])
    return time.perf_counter() - start


class GpuSampler(threading.Thread):
    """Samples ``nvidia-smi`` GPU utilisation every 0.5 s while running."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[float] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                out = subprocess.run(["nvidia-smi", "--query-gpu=utilization.gpu", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=5).stdout
                self.samples.extend(float(v) for v in out.split())
            except (OSError, ValueError, subprocess.TimeoutExpired):
                return
            time.sleep(0.5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["romp", "bev"], default="romp")
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--video-frames", type=int, default=24)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--actors", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="meshfleet-bench-"))
    body = write_synthetic_body_models(work / "body")
    ckpt = write_random_checkpoint(args.model, work / f"{args.model}.ckpt")
    images = []
    for i in range(args.images):
        images.append(work / "corpus" / f"{i:05d}.jpg")
        images[-1].parent.mkdir(exist_ok=True)
        cv2.imwrite(str(images[-1]), draw_scene(480, 640, 3, seed=i))
    video = write_video(work / "corpus" / "clip.mp4", [draw_scene(480, 640, 3, seed=1000 + i)
                                                       for i in range(args.video_frames)])
    settings = PredictorSettings(device=args.device, precision=args.precision, batch_size=args.batch_size, crowd=False)
    spec = ModelSpec(args.model, str(ckpt), str(body), "neutral", settings)
    frames = args.images + args.video_frames
    ensure_ray(None)

    def job(run: int, use_ray: bool) -> float:
        cfg = InferConfig(inputs=(str(work / "corpus"),), model=args.model, checkpoint=str(ckpt),
                          body_models=str(body), output=str(work / f"out-{use_ray}-{run}"), settings=settings,
                          use_ray=use_ray, resources=Resources(actors=args.actors), images_per_unit=8,
                          frames_per_chunk=8)
        start = time.perf_counter()
        run_infer(cfg)
        return time.perf_counter() - start

    sampler = GpuSampler()
    times: dict[str, list[float]] = {"direct": [], "stages (--no-ray)": [], "ray": []}
    direct(spec, images[:2], video)  # warm-up
    for run in range(args.repeats):
        times["direct"].append(direct(spec, images, video))
        times["stages (--no-ray)"].append(job(run, use_ray=False))
        if run == args.repeats - 1:
            sampler.start()
        times["ray"].append(job(run, use_ray=True))
    sampler.stop.set()
    fps = {k: frames / statistics.median(v) for k, v in times.items()}
    print(f"\n{args.model} {frames} frames, device {args.device}, precision {args.precision}, cpus {os.cpu_count()}")
    print(f"{'path':<20}{'frames/s':>10}{'direct / path':>15}")
    for name, value in fps.items():
        print(f"{name:<20}{value:>10.2f}{fps['direct'] / value:>15.2f}")
    if sampler.samples:
        print(f"GPU utilisation during the Ray run: mean {statistics.mean(sampler.samples):.0f} %, "
              f"max {max(sampler.samples):.0f} %")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"frames": frames, "frames_per_s": fps, "seconds": times,
                                         "gpu_util": sampler.samples}, indent=2))


if __name__ == "__main__":
    main()
