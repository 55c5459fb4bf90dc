"""Artifacts: uploaded code zips, safe unpacking, and cached worker environments."""

from .environments import BuildFailed, BuiltEnvironment, EnvironmentBuilder, requirements_file
from .interpreters import Interpreter, InterpreterUnavailable, find_interpreter
from .storage import (
    BUCKET,
    ArtifactError,
    ArtifactNotFound,
    ArtifactRef,
    ArtifactStore,
    ArtifactTooLarge,
    CorruptArtifact,
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
    "CorruptArtifact",
    "EnvironmentBuilder",
    "Interpreter",
    "InterpreterUnavailable",
    "InvalidArtifact",
    "UnsafeArtifact",
    "find_interpreter",
    "requirements_file",
    "unpack",
]
