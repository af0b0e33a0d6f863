"""A pydicom decoder plugin: 12-bit JPEG Extended (Process 2 & 4) through GDCM.

pydicom's own GDCM plugin refuses JPEG Extended above 8 bits (an old GDCM bug), its
pylibjpeg plugin fails on common 12-bit files ("scan start must be zero ...") and Pillow
has no 12-bit JPEG, so such a file (pydicom's `JPEG-lossy.dcm`) could not be decoded at
all. GDCM 3.x (`python-gdcm`) decodes it to the same values as dcmtk's `dcmdjpeg`
(tests/unit/domain/dicom/test_jpeg_extended.py). `decoding_options` asks for this plugin
for exactly that case. pydicom would also put its own GDCM plugin first for every other
compressed syntax once `gdcm` is importable, and that changes outcomes (its JPEG 2000 path
hands a read-only array to pydicom's sign correction: `J2K_pixelrep_mismatch.dcm` fails), so
`register` takes pydicom's GDCM plugin out: every other syntax decodes as it did before.

GDCM's bundled libjpeg writes its notes ("Unsupported JPEG data precision 12", tried
before its 12-bit build) straight to file descriptor 2. They are captured and logged at
DEBUG, so no library text reaches a terminal or a stage log at INFO. Redirecting fd 2 is
process-wide: the decode stage decodes in its worker process and the CLI in a child,
where nothing else writes meanwhile.
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydicom import uid
from pydicom.pixels import get_decoder

log = logging.getLogger(__name__)

try:
    import gdcm

    HAVE_GDCM = True
except ImportError:  # python-gdcm is a dependency; without it 12-bit JPEG Extended stays refused
    HAVE_GDCM = False

PLUGIN = "radstream-gdcm-12bit"
DECODER_DEPENDENCIES = {uid.JPEGExtended12Bit: ("python-gdcm>=3.0.10",)}


def is_available(syntax: str) -> bool:
    """pydicom's plugin interface: whether this plugin can decode `syntax`."""
    return HAVE_GDCM and syntax in DECODER_DEPENDENCIES


def decoding_options(ds: Any) -> dict[str, str]:
    """`iter_pixels` options for `ds`: this plugin for 12-bit JPEG Extended, else none."""
    syntax = ds.file_meta.get("TransferSyntaxUID")
    if register() and syntax == uid.JPEGExtended12Bit and int(ds.get("BitsStored", 8)) > 8:
        return {"decoding_plugin": PLUGIN}
    return {}


_registered = False


def register() -> bool:
    """Once: add this plugin to pydicom's JPEG Extended decoder and take pydicom's own GDCM
    plugin out of every decoder (see the module docstring). False without GDCM."""
    global _registered
    if not HAVE_GDCM:
        return False
    if not _registered:
        from pydicom.pixels.decoders import gdcm as pydicom_gdcm

        for syntax in pydicom_gdcm.DECODER_DEPENDENCIES:
            decoder = get_decoder(syntax)
            if "gdcm" in decoder.available_plugins:
                decoder.remove_plugin("gdcm")
        decoder = get_decoder(uid.JPEGExtended12Bit)
        if PLUGIN not in decoder.available_plugins:
            decoder.add_plugin(PLUGIN, (__name__, "decode_frame"))
        _registered = True
    return True


def decode_frame(src: bytes, runner: Any) -> bytes:
    """One encoded frame -> its decoded bytes (pydicom's decoder plugin interface)."""
    fragment = gdcm.Fragment()
    fragment.SetByteStringValue(src)
    fragments = gdcm.SequenceOfFragments.New()
    fragments.AddFragment(fragment)
    element = gdcm.DataElement(gdcm.Tag(0x7FE0, 0x0010))
    element.SetValue(fragments.__ref__())

    image = gdcm.Image()
    image.SetNumberOfDimensions(2)
    image.SetDimensions((runner.columns, runner.rows, 1))
    image.SetDataElement(element)
    kind = gdcm.PhotometricInterpretation.GetPIType(runner.photometric_interpretation)
    image.SetPhotometricInterpretation(gdcm.PhotometricInterpretation(kind))
    if runner.samples_per_pixel > 1:
        image.SetPlanarConfiguration(runner.planar_configuration)
    image.SetTransferSyntax(gdcm.TransferSyntax(gdcm.TransferSyntax.GetTSType(str.__str__(runner.transfer_syntax))))
    image.SetPixelFormat(gdcm.PixelFormat(runner.samples_per_pixel, runner.bits_allocated, runner.bits_stored,
                                          runner.bits_stored - 1, runner.pixel_representation))
    with _stderr_to_debug():
        buffer = image.GetBuffer()
    if not buffer:
        raise ValueError("GDCM could not decode the JPEG Extended frame")
    return buffer.encode("utf-8", "surrogateescape")  # GDCM returns char* as str


@contextmanager
def _stderr_to_debug() -> Iterator[None]:
    """What C code writes to fd 2 meanwhile goes to this module's DEBUG log instead."""
    with tempfile.TemporaryFile() as captured:
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf-8", "replace").strip()
            if text:
                log.debug("GDCM: %s", " | ".join(text.splitlines()))
