"""Issue 18's measured claim: pseudo-labels close a domain gap with zero target labels.

A labelled *source* domain (the training recipe of the shipped checkpoint: procedural backgrounds,
FOV 50-70, camera 0.9-2 m, 75 % keyframe poses) and an unlabelled *target* domain that differs in
backgrounds (cluttered images from a folder, every scene), camera (FOV 35-50, 2-3.5 m high, looking
further down), pose mix (60 % joint-limit poses, wider) and degradations (more blur and noise). One
run, all through the CLI as a user runs it:

1. ``synth`` the target pool (unlabelled: only its images are used) and held-out target test scenes;
2. ``pseudo-label`` the pool with the source model, once with the default filters and once with the
   filters off (every detection kept, weight 1);
3. ``train --init SOURCE`` on the source data mixed with each pseudo-label set (same steps, seed);
4. ``infer`` + ``eval agora --protocol fixed`` on the held-out target scenes for the source model
   and both fine-tuned models: F1, MPJPE and PA-MPJPE.

    python bench/bench_domain_shift.py --source-checkpoint runs/main/model.pth \\
        --source-data data/train --work runs/domain-shift --steps 600

The table goes to stdout and ``WORK/domain_shift.json``. Every step resumes (a rerun continues).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

MESHFLEET = [sys.executable, "-m", "jobs.cli"]
TARGET_SETTINGS = [  # the target domain's scene settings (a spec section of `meshfleet synth`)
    "--fov", "35-50", "--size", "640x360", "--people", "1-6",
]
TARGET_SPEC = """kind: synth
synth:
  settings:
    camera: {height_m: [2.0, 3.5], pitch_deg: [10.0, 35.0]}
    poses: {library_share: 0.4, random_spread: 0.6}
    look: {folder_share: 1.0, blur_share: 0.7, noise_sigma: [3.0, 10.0]}
"""
# Filters off: every detection of inference is a label (the thresholds' widest legal values).
NO_FILTERS = ["--min-center-conf", "0", "--min-in-frame", "0", "--max-abs-beta", "100",
              "--max-limit-violation-deg", "180", "--min-depth-m", "0", "--max-depth-m", "1000",
              "--max-depth-scale-ratio", "1000"]


def run(args: list[str], log: Path) -> str:
    """Run one meshfleet command, appending its output to ``log``; returns stdout."""
    print("$ meshfleet " + " ".join(args), flush=True)
    done = subprocess.run(MESHFLEET + args, capture_output=True, text=True, env={**os.environ})
    with log.open("a") as f:
        f.write(f"$ meshfleet {' '.join(args)}\n{done.stdout}\n{done.stderr}\n")
    if done.returncode != 0:
        raise SystemExit(f"meshfleet {args[0]} failed (exit {done.returncode}); see {log}")
    return done.stdout


def clutter_backgrounds(folder: Path, count: int, seed: int) -> None:
    """``count`` 640 x 360 images of coloured boxes, discs and lines on a textured ground: a
    background family the source domain never shows."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(count):
        path = folder / f"clutter_{i:03d}.jpg"
        if path.exists():
            continue
        image = np.full((360, 640, 3), rng.integers(40, 200, 3), np.uint8)
        image = cv2.add(image, rng.integers(0, 40, image.shape, dtype=np.uint8))
        for _ in range(int(rng.integers(15, 40))):
            color = tuple(int(c) for c in rng.integers(0, 256, 3))
            x, y = int(rng.integers(0, 640)), int(rng.integers(0, 360))
            kind = rng.integers(0, 3)
            if kind == 0:
                corner = (x + int(rng.integers(10, 200)), y + int(rng.integers(10, 150)))
                cv2.rectangle(image, (x, y), corner, color, -1)
            elif kind == 1:
                cv2.circle(image, (x, y), int(rng.integers(5, 60)), color, -1)
            else:
                cv2.line(image, (x, y), (int(rng.integers(0, 640)), int(rng.integers(0, 360))), color,
                         int(rng.integers(1, 8)))
        cv2.imwrite(str(path), cv2.GaussianBlur(image, (3, 3), 0))


def score(checkpoint: str, test: Path, out: Path, log: Path) -> dict:
    """infer on the held-out target images, then eval agora (fixed protocol); the metrics."""
    results = out / "results"
    run(["infer", str(test / "images"), "--checkpoint", checkpoint, "--body-models", "open",
         "--output", str(results), "--device", "cpu"], log)
    metrics = out / "agora.json"
    run(["eval", "agora", "--predictions", str(results), "--data", str(test / "agora"), "--body-models", "open",
         "--protocol", "fixed", "--output-json", str(metrics), "--no-mlflow"], log)
    data = json.loads(metrics.read_text())
    return {k: data[k] for k in ("f1", "precision", "recall", "mpjpe", "pa_mpjpe")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--source-checkpoint", required=True)
    parser.add_argument("--source-data", required=True, help="the source model's labelled training set")
    parser.add_argument("--work", required=True, type=Path)
    parser.add_argument("--pool", type=int, default=600, help="unlabelled target scenes")
    parser.add_argument("--test", type=int, default=160, help="held-out target scenes")
    parser.add_argument("--steps", type=int, default=600, help="fine-tuning steps")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--pseudo-weight", type=float, default=1.0, help="sampling weight of the pseudo set")
    args = parser.parse_args()
    work: Path = args.work
    work.mkdir(parents=True, exist_ok=True)
    log = work / "commands.log"
    clutter_backgrounds(work / "backgrounds", 60, seed=7)
    spec = work / "target.yaml"
    spec.write_text(TARGET_SPEC)
    for name, scenes, seed in (("target-pool", args.pool, 10), ("target-test", args.test, 11)):
        run(["synth", "--spec", str(spec), "--output", str(work / name), "--scenes", str(scenes), "--seed", str(seed),
             "--backgrounds", str(work / "backgrounds"), *TARGET_SETTINGS], log)
    pool = str(work / "target-pool" / "images")
    for name, extra in (("pseudo-filtered", []), ("pseudo-unfiltered", NO_FILTERS)):
        run(["pseudo-label", pool, "--checkpoint", args.source_checkpoint, "--body-models", "open",
             "--output", str(work / name), "--device", "cpu", "--no-mlflow", *extra], log)
    table = {"source-only": score(args.source_checkpoint, work / "target-test", work / "eval-source", log)}
    for name in ("pseudo-filtered", "pseudo-unfiltered"):
        out = work / f"ft-{name}"
        run(["train", "--init", args.source_checkpoint, "--data", f"{args.source_data}:1",
             "--data", f"{work / name}:{args.pseudo_weight}", "--model", "romp", "--backbone", "small",
             "--output", str(out), "--workers", "1", "--batch-size", str(args.batch_size), "--lr", str(args.lr),
             "--steps", str(args.steps), "--seed", "0"], log)
        table[f"fine-tuned on {name}"] = score(str(out / "model.pth"), work / "target-test", work / f"eval-{name}", log)
    (work / "domain_shift.json").write_text(json.dumps(table, indent=2))
    print(f"\n{'model':<36} {'F1':>6} {'MPJPE':>8} {'PA-MPJPE':>9}  (held-out target scenes, mm)")
    for name, m in table.items():
        print(f"{name:<36} {m['f1']:>6.3f} {m['mpjpe']:>8.1f} {m['pa_mpjpe']:>9.1f}")


if __name__ == "__main__":
    main()
