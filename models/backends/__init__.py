"""Inference backends: each turns a manifest plus preprocessed tensors into ModelOutputs."""

from radstream.models.outputs import Detection, ModelOutput

__all__ = ["Detection", "ModelOutput"]
