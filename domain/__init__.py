"""The pure domain: DICOM transforms, fusion, rules, thresholds, keys and error classes.

It imports no Kafka, no torch and nothing else of radstream, so every rule here is tested
on plain values. The layers above (models, streams, services) import it; never the reverse
(pyproject's import-linter contracts).
"""
