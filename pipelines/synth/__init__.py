"""The ``meshfleet synth`` pipeline: units of scenes -> images, videos, masks, labels, oracle.

    generator  one unit: draw, render and write its scenes, then its oracle and labels files
    oracle     the ground truth as a meshfleet results dataset
    media      JPEG / PNG / MP4 encoding and the contact sheet
    job        synth on the job skeleton (pipelines.skeleton): stages, committer, on Ray or in process
"""
