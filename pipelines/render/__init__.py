"""The ``meshfleet render`` pipeline: results dataset -> one picture or MP4 per image / video.

    plan     (driver)  group the results rows by source: one unit per image or video
    frames   stage 1   read the unit's media frames and results rows -> one row per frame
    draw     stage 2   mesh and render the people: overlay, side and top views, 2D joints -> panels
    encode   commit    the unit's panels -> PNG / JPEG bytes, or H.264 MP4 bytes

Every stage is a plain function (or class) of batch dicts of numpy columns, testable without Ray.
"""
