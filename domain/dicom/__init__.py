"""The decode stage's pure core: DICOM bytes -> frames, display frames, allow-listed metadata.

`decode` orders the checks, `pixels` holds the PS3.3 C.11 transforms, `metadata`
the one allow-list of what may leave the stage. No Kafka here.
"""

from radstream.domain.dicom.decode import DecodedInstance, DecodeLimits, decode_instance
from radstream.domain.dicom.metadata import extract_metadata

__all__ = ["DecodeLimits", "DecodedInstance", "decode_instance", "extract_metadata"]
