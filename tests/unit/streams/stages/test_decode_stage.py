"""The decode stage around the pure core: claim check, metadata contract, non-image policy."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pydicom
import pytest
from radstream.domain.errors import NotAnImage, Skipped
from radstream.services.demo import real_radiographs
from radstream.streams.blobstore import FileBlobStore
from radstream.streams.codec import Codec
from radstream.streams.stage import Inbound
from radstream.streams.stages.decode import DecodeStage

from tests.factories import arrival_event

SR = Path(pydicom.__file__).parent / "data" / "test_files" / "test-SR.dcm"


def test_a_radiograph_becomes_a_valid_image_decoded_event(tmp_path) -> None:
    store = FileBlobStore(tmp_path)
    path = real_radiographs()[0]
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    event = arrival_event(blob=store.put(path.read_bytes(), "application/dicom"), sop_uid=str(ds.SOPInstanceUID))
    [out] = DecodeStage(store).process(Inbound(event))
    Codec().encode("ImageDecoded", out.value)  # the contract holds
    assert out.key == event["sop_uid"] and out.value["metadata"]["modality"] == "CR"
    assert store.get_array(out.value["pixels"]).shape == (1955, 1841)
    assert "CompressedSamples" not in repr(out.value)  # the patient name stays behind
    # what arrived is raw, what decode made is derived: the gateway serves and gc ages them apart (D-029)
    assert store.area_of(event["blob"]) == "raw"
    assert store.is_derived(out.value["pixels"]) and store.is_derived(out.value["display"])


def test_non_image_policy_skip_or_dead_letter(tmp_path) -> None:
    store = FileBlobStore(tmp_path)
    event = arrival_event(blob=store.put(SR.read_bytes(), "application/dicom"))
    with pytest.raises(Skipped, match="not an image") as info:
        DecodeStage(store, non_image_policy="skip").process(Inbound(event))
    assert info.value.code == "not_an_image"
    with pytest.raises(NotAnImage):
        DecodeStage(store, non_image_policy="dlq").process(Inbound(event))


def test_decoding_runs_bounded_and_a_slow_decode_is_rejected_not_fatal(tmp_path) -> None:
    from radstream.domain.errors import Rejected

    store = FileBlobStore(tmp_path)
    uncompressed, j2k = real_radiographs()[0], real_radiographs()[1]  # RG1_UNCR, RG1_J2KR (~0.5 s to decode)

    def event(path):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        return Inbound(arrival_event(blob=store.put(path.read_bytes(), "application/dicom"),
                                     sop_uid=str(ds.SOPInstanceUID)))

    stage = DecodeStage(store, timeout_s=30.0)
    try:
        [out] = stage.process(event(uncompressed))  # in the worker process, blobs written there
        assert store.get_array(out.value["pixels"]).shape == (1955, 1841)
        stage._worker.timeout_s = 0.05  # a limit the JPEG 2000 decode cannot meet
        with pytest.raises(Rejected, match="longer than 0.05 s") as info:
            stage.process(event(j2k))
        assert info.value.code == "timeout"
        stage._worker.timeout_s = 30.0
        assert len(stage.process(event(uncompressed))) == 1  # a fresh worker carries on
    finally:
        stage.close()


def test_an_undecodable_file_leaves_no_traceback_in_the_stage_log(tmp_path, capfd) -> None:
    """The worker process writes to the stage's stderr (its log): pydicom's per-plugin
    tracebacks and GDCM's notes must not reach it; the rejection carries the reason."""
    from radstream.domain.errors import Rejected
    from tests.jpeg_extended import JPEG_BASELINE, broken_scan

    store = FileBlobStore(tmp_path)
    data = broken_scan(JPEG_BASELINE)  # two plugins fail, and pydicom logs each one's traceback
    sop = str(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True).SOPInstanceUID)
    stage = DecodeStage(store, timeout_s=30.0)
    try:
        with pytest.raises(Rejected) as info:
            stage.process(Inbound(arrival_event(blob=store.put(data, "application/dicom"), sop_uid=sop)))
    finally:
        stage.close()
    assert info.value.code == "undecodable"
    err = capfd.readouterr().err
    assert "Traceback" not in err and "JPEG" not in err, err


def test_the_pixel_blob_holds_stored_values_and_preprocess_reads_the_same_frame(tmp_path) -> None:
    """RG1's blob is uint16 (half the float32 frame) with its transform in the event; the model
    frame preprocess rebuilds from it is the one decode_instance gives."""
    from radstream.domain.dicom.decode import decode_instance
    from radstream.domain.dicom.pixels import PixelTransform, model_frame

    store = FileBlobStore(tmp_path)
    path = real_radiographs()[0]
    ds = pydicom.dcmread(path, stop_before_pixels=True)
    event = arrival_event(blob=store.put(path.read_bytes(), "application/dicom"), sop_uid=str(ds.SOPInstanceUID))
    [out] = DecodeStage(store, timeout_s=0).process(Inbound(event))
    Codec().encode("ImageDecoded", out.value)
    blob = store.get_array(out.value["pixels"])
    assert blob.dtype == np.uint16 and out.value["pixels"]["dtype"] == "uint16"
    frame = model_frame(blob, PixelTransform.from_record(out.value["pixel_transform"]))
    np.testing.assert_array_equal(frame, decode_instance(path.read_bytes()).frames[0])
    assert out.value["pixels"]["size_bytes"] < frame.nbytes * 0.51  # .npy header aside, half
