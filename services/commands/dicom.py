"""`radstream dicom decode` and `radstream dicom deidentify`: the decode stage's core and the
Annex E profile on files, without Kafka.

decode runs `decode_instance` in a forked child process under a wall-clock limit
(`--timeout`, default 60 s): a codec stuck in C code cannot be interrupted by a
signal handler in the same process, but a child can always be killed. A child
that dies (a codec crash) or overruns counts as a rejection, like any other
input the stage refuses.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import sys
import warnings
from multiprocessing.connection import Connection
from pathlib import Path

from radstream.services.commands.errors import EXIT_ERROR, EXIT_USAGE, CliError

EXIT_REFUSED = 3  # rejected, not an image, timed out, or crashed the decoder
DEFAULT_TIMEOUT_S = 60.0
OUTPUT_SUFFIXES = (".npy", ".png")
RETAIN_FLAGS = {
    "--retain-uids": "retain_uids",
    "--retain-device-identity": "retain_device_identity",
    "--retain-institution-identity": "retain_institution_identity",
    "--retain-patient-characteristics": "retain_patient_characteristics",
    "--retain-full-dates": "retain_full_dates",
}
RETAIN_HELP = {
    "retain_uids": "keep the original UIDs (Retain UIDs Option, 113110); no key needed",
    "retain_device_identity": "keep device serial numbers, station names, detector IDs (113109)",
    "retain_institution_identity": "keep institution names and addresses (113112)",
    "retain_patient_characteristics": "keep age, sex, size, weight, smoking and pregnancy status (113108)",
    "retain_full_dates": "keep dates and times unmodified (Retain Longitudinal ... Full Dates Option, 113106)",
}


def register(subparsers: argparse._SubParsersAction) -> None:
    dicom = subparsers.add_parser("dicom", help="DICOM tools: decode one file, de-identify files")
    sub = dicom.add_subparsers(dest="dicom_command", required=True, metavar="COMMAND")

    sp = sub.add_parser("decode", help="run the decode stage's core on one file (exit 3 when refused)")
    sp.add_argument("file", type=Path)
    sp.add_argument("--out", type=Path, help="write the model frames (.npy, float32) or the display frame (.png)")
    sp.add_argument("--json", action="store_true", help="print the outcome as one JSON object")
    sp.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="wall-clock limit in seconds (default 60)")
    sp.set_defaults(func=cmd_decode)

    sp = sub.add_parser("deidentify", help="PS3.15 Annex E Basic Profile; IN and OUT are files or folders")
    sp.add_argument("src", type=Path, metavar="IN")
    sp.add_argument("dst", type=Path, metavar="OUT")
    sp.add_argument("--key-file", type=Path, help="UID remapping key (default: $RADSTREAM_DEID_KEY)")
    # PS3.15 E.3 retain options: each applies its Table E.1-1 column's K rows and is coded in the output.
    for flag, option in RETAIN_FLAGS.items():
        sp.add_argument(flag, dest=option, action="store_true", help=RETAIN_HELP[option])
    sp.set_defaults(func=cmd_deidentify)


def cmd_decode(args: argparse.Namespace) -> int:

    if args.out is not None and args.out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise CliError(f"--out must end in .npy or .png, not {args.out.name!r}", EXIT_USAGE)
    try:
        data = args.file.read_bytes()
    except OSError as exc:
        raise CliError(f"{args.file}: {exc.strerror or exc}") from None
    outcome = decode_with_timeout(data, args.out, args.timeout)
    outcome["file"] = str(args.file)
    if args.json:
        print(json.dumps(outcome, sort_keys=True))
    if outcome["outcome"] != "decoded":
        print(f"radstream: {outcome['outcome']} ({outcome['code']}): {outcome['reason']}", file=sys.stderr)
        return EXIT_REFUSED
    if not args.json:
        print(summary_text(outcome))
    return 0


def decode_with_timeout(data: bytes, out: Path | None, timeout_s: float) -> dict:
    """Decode in a forked child; the outcome is a JSON-able dict (see `_decode_child`)."""
    context = multiprocessing.get_context("fork")
    receiver, sender = context.Pipe(duplex=False)
    child = context.Process(target=_decode_child, args=(data, out, sender), daemon=True)
    child.start()
    sender.close()
    try:
        if receiver.poll(timeout_s):
            try:
                return receiver.recv()
            except EOFError:
                pass  # the child died before answering
        elif child.is_alive():
            child.kill()
            child.join()
            return _refused("rejected", "timeout", f"decode took longer than {timeout_s:g} s")
        child.join()
        return _refused("rejected", "decoder_crashed", f"the decoder process died (exit code {child.exitcode})")
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join()


def _decode_child(data: bytes, out: Path | None, sender: Connection) -> None:
    from radstream.domain.dicom.decode import decode_instance
    from radstream.domain.errors import NotAnImage, Rejected

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            decoded = decode_instance(data)
            outcome = {
                "outcome": "decoded",
                "frames": len(decoded.frames),
                "shape": list(decoded.frames[0].shape),
                "dtype": str(decoded.frames[0].dtype),
                "display_dtype": str(decoded.display[0].dtype),
                "metadata": decoded.metadata,
            }
            if out is not None:
                outcome["out"] = str(write_output(decoded, out))
        except NotAnImage as exc:
            outcome = _refused("not_an_image", exc.code, exc.reason)
        except Rejected as exc:
            outcome = _refused("rejected", exc.code, exc.reason)
        except Exception as exc:  # a bug in the core: still one line, never a traceback
            outcome = _refused("error", type(exc).__name__.lower(), f"{type(exc).__name__}: {exc}")
    outcome["warnings"] = sorted({" ".join(str(w.message).split()) for w in caught})
    sender.send(outcome)
    sender.close()


def write_output(decoded, out: Path) -> Path:
    """.npy: the float32 model frames (H, W), or (N, H, W) when multi-frame. .png: display frame 0."""
    import numpy as np

    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".npy":
        frames = decoded.frames[0] if len(decoded.frames) == 1 else np.stack(decoded.frames)
        np.save(out, frames, allow_pickle=False)
    else:
        import cv2

        if not cv2.imwrite(str(out), decoded.display[0]):
            raise OSError(f"cannot write {out}")
    return out


def summary_text(outcome: dict) -> str:
    rows, columns = outcome["shape"]
    lines = [f"decoded {outcome['file']}: {outcome['frames']} frame(s) of {rows}x{columns} "
             f"{outcome['dtype']} (display {outcome['display_dtype']})"]
    if "out" in outcome:
        lines.append(f"wrote {outcome['out']}")
    lines += [f"  {key}: {value}" for key, value in outcome["metadata"].items() if value is not None]
    lines += [f"  warning: {w}" for w in outcome["warnings"]]
    return "\n".join(lines)


def _refused(outcome: str, code: str, reason: str) -> dict:
    return {"outcome": outcome, "code": code, "reason": reason}


def cmd_deidentify(args: argparse.Namespace) -> int:
    from radstream.services.deidentify import (
        DEID_KEY_ENV,
        DeidentifyError,
        RetainOptions,
        UIDRemapper,
        deid_key_from_env,
        deidentify_paths,
    )

    options = RetainOptions(**{option: getattr(args, option) for option in RETAIN_FLAGS.values()})
    if args.key_file is not None:
        try:
            key = args.key_file.read_bytes().strip()
        except OSError as exc:
            raise CliError(f"{args.key_file}: {exc.strerror or exc}", EXIT_USAGE) from None
    else:
        key = deid_key_from_env()
    if not key and not options.retain_uids:
        raise CliError(f"no de-identification key: pass --key-file FILE or set {DEID_KEY_ENV}", EXIT_USAGE)
    try:
        written, errors = deidentify_paths(args.src, args.dst, UIDRemapper(key) if key else None, options)
    except DeidentifyError as exc:
        raise CliError(str(exc)) from None
    for line in errors:
        print(f"radstream: skipped {line}", file=sys.stderr)
    print(f"de-identified {written} file(s) into {args.dst}", file=sys.stderr)
    return EXIT_ERROR if errors else 0
