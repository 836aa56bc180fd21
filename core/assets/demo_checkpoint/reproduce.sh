#!/usr/bin/env bash
# Rebuild the shipped demo checkpoint from nothing: synthetic data, then meshfleet train.
# Usage: bash core/assets/demo_checkpoint/reproduce.sh OUT   (OUT/run/model.pth is the result)
set -euo pipefail
OUT=${1:?give an output folder}
M=${MESHFLEET:-meshfleet}
$M synth --output "$OUT/train" --scenes 3000 --seed 0 --people 1-6 --size 512x512 --size 640x360
$M synth --output "$OUT/val" --scenes 64 --seed 2 --people 1-6 --size 640x360
$M train --data "$OUT/train" --val "$OUT/val" --output "$OUT/run" --model romp --backbone small \
    --input-size 256 --workers 1 --batch-size 8 --lr 1e-3 --warmup-steps 50 --schedule cosine --steps 1400 \
    --checkpoint-every 100 --val-every 600 --log-every 10 --seed 0
