"""Entry points: the meshfleet CLI, job configs, local runs."""
