"""Data pipelines: readers, inference stage, Parquet writer."""
