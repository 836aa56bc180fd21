"""Learning-rate schedules: step -> multiplier of the peak learning rate (pure functions)."""

from __future__ import annotations

import math

# step decay: x0.1 at 60 % and again at 85 % of the run (the usual two-drop schedule of detection
# training, e.g. Detectron's 1x schedule drops at 2/3 and 8/9)
STEP_DECAY_AT = (0.6, 0.85)


def lr_factor(step: int, total: int, warmup: int, schedule: str, final_ratio: float) -> float:
    """Multiplier of the peak learning rate for optimiser step ``step`` (0-based) of ``total``.

    Linear warm-up from 1 / (warmup + 1) over ``warmup`` steps, then ``cosine`` (half a cosine from 1
    down to ``final_ratio`` at the last step), ``step`` (x0.1 at each of :data:`STEP_DECAY_AT`) or
    ``constant``.
    """
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(total - warmup - 1, 1)
    if schedule == "step":
        return 0.1 ** sum(progress >= at for at in STEP_DECAY_AT)
    if schedule == "cosine":
        return final_ratio + (1.0 - final_ratio) * 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))
    raise ValueError(f"unknown schedule {schedule!r}")


def default_warmup(total: int) -> int:
    """5 % of the run, at most 500 steps."""
    return min(500, total // 20)
