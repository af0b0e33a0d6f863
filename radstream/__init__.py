"""radstream: streaming medical-imaging AI on Kafka.

The code lives in the top-level folders of the repository (streams/, services/,
models/), installed as the subpackages radstream.streams, radstream.services and
radstream.models. See docs/architecture.md.
"""

__version__ = "0.1.0"
