"""``--body-models``: the one place where a body-model name or location becomes a BodyModelSet."""

from __future__ import annotations

from core.body_models import BodyModelSet
from pipelines.storage import localize

OPEN = "open"  # the open, license-free model meshfleet ships (core/assets/open_body_model)


def is_open(body_models: str) -> bool:
    return body_models == OPEN


def load_body_model_set(body_models: str, gender: str = "neutral", for_bev: bool = False) -> BodyModelSet:
    """``open``, or a folder / s3:// prefix with the official SMPL files (or a model written by
    ``meshfleet body-model build-open``) -> the body models; BEV (``for_bev``) adds SMPL-A and SMIL."""
    if is_open(body_models):
        return BodyModelSet.open(for_bev=for_bev, gender=gender)
    return BodyModelSet.from_dir(localize(body_models, directory=True), gender, for_bev=for_bev)
