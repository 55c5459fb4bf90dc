"""Artifacts: uploaded code zips, safe unpacking, and cached worker environments."""

from .environments import BuildFailed, BuiltEnvironment, EnvironmentBuilder, requirements_file
from .storage import (
    BUCKET,
    ArtifactError,
    ArtifactNotFound,
    ArtifactRef,
    ArtifactStore,
    ArtifactTooLarge,
    InvalidArtifact,
)
from .unpack import UnsafeArtifact, unpack

__all__ = [
    "BUCKET",
    "ArtifactError",
    "ArtifactNotFound",
    "ArtifactRef",
    "ArtifactStore",
    "ArtifactTooLarge",
    "BuildFailed",
    "BuiltEnvironment",
    "EnvironmentBuilder",
    "InvalidArtifact",
    "UnsafeArtifact",
    "requirements_file",
    "unpack",
]
