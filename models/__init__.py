"""Demo models for the inference stage: preprocessing profiles, manifests, registry, backends.

The shipped models are trained on synthetic phantoms (see train_demo.py) and are
NOT FOR CLINICAL USE.
"""
