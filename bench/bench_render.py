"""Speed of meshfleet's renderer (``core/render``): ms per image for people's meshes at 512 x 512.

    .venv/bin/python bench/bench_render.py --people 5 --size 512 --repeats 20

Scenes: ``--people`` procedural mannequins (``core.render.primitives.mannequin``: 26,040
triangles each, about an SMPL / anny body) standing 2.5-7 m from the canonical FOV-60 camera,
overlapping, with random turns; ``--scenes`` different ones, cycled. Reported per image, median
and best of ``--repeats`` runs: the z-buffer alone (depth + face ids), the full render (+ instance
ids, barycentrics, smooth normals, Lambert shading) one image per call and ``--batch`` images per
call; wall time and process CPU time (on a loaded machine CPU time is the better estimate of an
idle one's wall time with one thread), with the conditions (threads, load average) alongside.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch

from core.render import PeopleMeshes, RasterSettings, RenderSettings, canonical_cameras, rasterize, render
from core.render.primitives import mannequin

FLIP = torch.tensor([1.0, -1.0, -1.0])  # Y-up body frame -> camera frame (y down), facing the camera


def make_scene(people: int, seed: int) -> torch.Tensor:
    """(people, V, 3) mannequins in the camera frame, spread over the view at 2.5-7 m."""
    verts, _, _ = mannequin()
    gen = torch.Generator().manual_seed(seed)
    placed = []
    for _ in range(people):
        yaw = float(torch.rand(1, generator=gen)) * 2 * math.pi
        c, s = math.cos(yaw), math.sin(yaw)
        turn = torch.tensor([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])
        depth = 2.5 + 4.5 * float(torch.rand(1, generator=gen))
        x = (float(torch.rand(1, generator=gen)) - 0.5) * depth * 0.9  # within ~the 60 deg field of view
        placed.append((verts @ turn.T) * FLIP + torch.tensor([x, 0.35, depth]))
    return torch.stack(placed)


def timed(fn: Callable[[], object], repeats: int, device: torch.device) -> tuple[list[float], list[float]]:
    """Wall and process-CPU seconds of ``repeats`` calls (after one warm-up call)."""
    fn()
    walls, cpus = [], []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return walls, cpus


def summary(walls: list[float], cpus: list[float], images: int) -> dict[str, float]:
    per = 1e3 / images
    return {"wall_ms_median": round(statistics.median(walls) * per, 2), "wall_ms_best": round(min(walls) * per, 2),
            "cpu_ms_median": round(statistics.median(cpus) * per, 2), "cpu_ms_best": round(min(cpus) * per, 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--people", type=int, default=5)
    parser.add_argument("--size", type=int, default=512, help="image side in pixels")
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--batch", type=int, default=4, help="images per call in the batched run")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--cull", choices=["none", "back"], default="none")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (default 1: one core per synth / render worker)")

    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    _, faces, _ = mannequin()
    faces = faces.to(device)
    scenes = [make_scene(args.people, seed).to(device) for seed in range(args.scenes)]
    settings = RenderSettings(raster=RasterSettings(cull=args.cull))
    camera = canonical_cameras([(args.size, args.size)] * args.batch, device=device)
    one = camera.select(0)
    load_before = os.getloadavg()
    counter = iter(range(10**9))

    def raster_one() -> object:
        verts = scenes[next(counter) % len(scenes)]
        packed = (faces.unsqueeze(0) + torch.arange(len(verts), device=device).view(-1, 1, 1) * verts.shape[1])
        image = torch.zeros(verts.shape[0] * verts.shape[1], dtype=torch.long, device=device)
        return rasterize(verts.reshape(-1, 3), packed.reshape(-1, 3), image, one, settings.raster)

    def render_one() -> object:
        return render(PeopleMeshes.from_images([scenes[next(counter) % len(scenes)]], faces), one, settings)

    def render_batch() -> object:
        start = next(counter)
        batch = [scenes[(start + i) % len(scenes)] for i in range(args.batch)]
        return render(PeopleMeshes.from_images(batch, faces), camera, settings)

    result = {
        "people": args.people, "triangles_per_image": args.people * int(faces.shape[0]), "size": args.size,
        "cull": args.cull, "device": str(device), "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(), "torch": torch.__version__,
        "zbuffer_one_per_call": summary(*timed(raster_one, args.repeats, device), 1),
        "render_one_per_call": summary(*timed(render_one, args.repeats, device), 1),
        f"render_{args.batch}_per_call": summary(*timed(render_batch, max(1, args.repeats // args.batch), device),
                                                  args.batch),
        "load_average_before_after": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
    }
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
