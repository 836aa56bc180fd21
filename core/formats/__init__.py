"""Pure writers of interchange formats: arrays in, file bytes out (no file I/O).

``skeleton`` holds the skeleton description they share and ``motion`` turns a track's SMPL
parameters (camera frame, as stored in the results) into the world-frame motion they write;
``gltf`` (binary .glb), ``bvh`` and ``amass`` (SMPL npz) are the writers themselves.
"""
