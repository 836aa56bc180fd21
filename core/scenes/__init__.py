"""Synthetic multi-person scenes with exact labels (pure: numpy / torch / opencv / scipy, no I/O).

    settings    typed, frozen sampler settings
    poses       SMPL 24-joint keyframe library, joint limits, pose samplers, user motion frames
    placement   cameras, ground-plane placement, depth layers
    appearance  skin tones, clothing, lighting
    backgrounds procedural / folder backgrounds, compositing, degradations
    record      the scene record every output is made from
    sampler     scene records from (seed, index)
    rendering   the renderer's entry point for scenes
    labels      per-person labels of a rendered frame
    build       record -> images, instance ids, labels
"""
