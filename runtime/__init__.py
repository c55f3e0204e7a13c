"""Inference runtime: face pipeline, restorer pipelines, backends, CLI (restore, bench)."""
