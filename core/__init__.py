"""Pure, batched numeric code: networks, body models, pre-processing, parsing, cameras.

Nothing here touches Ray, MLflow or remote file systems, and nothing runs at import time.
"""
