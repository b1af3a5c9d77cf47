"""The lifecycle pipeline: cached steps from source data to a promoted model."""

from mlcycle.pipeline.project import Project

__all__ = ["Project"]
