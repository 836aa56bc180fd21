"""Speed of ``meshfleet synth`` per core: scenes/s at 512 x 512 with five people, one thread.

    .venv/bin/python bench/bench_synth.py --body-models open --scenes 20

Per scene, as one Ray worker makes it: draw the record (poses, placement: body-model forwards),
render it (people + each person alone for occlusion), label it, composite and degrade the image,
encode the JPEG and the PNG mask, and build its annotation rows. Reported: scenes/s of wall time
and of process CPU time (on a loaded machine CPU time is the better estimate of an idle core), the
share of each stage, and the conditions (threads, load average). ``--body-models``: ``open`` (the
default, the shipped open model) or a folder of SMPL-format files.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch

from core.scenes.build import SceneBuilder
from core.scenes.sampler import SceneSampler
from core.scenes.settings import CameraSettings, SceneSettings
from pipelines.annotations import scene_rows
from pipelines.synth.generator import SynthSpec, load_body_models
from pipelines.synth.media import encode_jpeg, encode_mask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--body-models", default="open", help="'open' or a folder of SMPL-format files")
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument("--people", type=int, default=5)
    parser.add_argument("--size", default="512x512")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warmup", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = SceneSettings(people=(args.people, args.people), camera=CameraSettings(sizes=(args.size,))).validate()
    body = load_body_models(SynthSpec(settings, 0, args.body_models, ""))
    sampler, builder = SceneSampler(body, settings), SceneBuilder(body, settings.placement)
    stages = {"sample": 0.0, "render + labels + image": 0.0, "encode + rows": 0.0}
    people = 0
    for index in range(args.warmup):
        builder.build(sampler.sample(1, index))
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for index in range(args.scenes):
        t0 = time.perf_counter()
        scene = sampler.sample(0, index)
        t1 = time.perf_counter()
        built = builder.build(scene)
        t2 = time.perf_counter()
        encode_jpeg(built.frames[0].image, scene.look.jpeg_quality)
        encode_mask(built.frames[0].ids)
        scene_rows(built, f"images/{scene.stem}.jpg")
        t3 = time.perf_counter()
        stages["sample"] += t1 - t0
        stages["render + labels + image"] += t2 - t1
        stages["encode + rows"] += t3 - t2
        people += built.scene.num_people
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    report = {
        "scenes": args.scenes, "size": args.size, "people_drawn": args.people,
        "people_kept_mean": people / args.scenes, "threads": args.threads, "body_models": args.body_models,
        "num_verts": int(body.smpl.v_template.shape[0]),
        "scenes_per_s_wall": round(args.scenes / wall, 3), "scenes_per_s_cpu": round(args.scenes / cpu, 3),
        "stage_share": {k: round(v / sum(stages.values()), 3) for k, v in stages.items()},
        "load_average": os.getloadavg()[0], "cpus": os.cpu_count(),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
