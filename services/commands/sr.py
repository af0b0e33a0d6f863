"""`radstream sr`: a study's final result as a DICOM Structured Report (TID 1500) file."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from radstream.services.commands.bootstrap import config_from, require_bootstrap
from radstream.services.commands.errors import CliError


def _sr(args: argparse.Namespace) -> int:
    from radstream.models.registry import default_registry_dir, load_manifests
    from radstream.services.structured_report import (
        ReportError,
        made_by_demo_models,
        structured_report,
    )

    logging.getLogger("highdicom").setLevel(logging.WARNING)  # it logs every module it copies at INFO
    config = config_from(args) if args.result else require_bootstrap(args)  # --study reads Kafka
    if args.result:
        try:
            result = json.loads(Path(args.result).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise CliError(f"cannot read the result {args.result}: {exc}") from None
    else:
        result = _latest_final(config, args.study)
    manifests = load_manifests(config.model_registry or default_registry_dir())
    context = _patient(config, result)
    try:
        sr = structured_report(result, not_for_clinical_use=made_by_demo_models(result["model_versions"], manifests),
                               context=context)
    except ReportError as exc:
        raise CliError(str(exc)) from None
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sr.save_as(out, enforce_file_format=True)
    findings = sum(len(img["findings"]) for img in result["images"])
    gated = sum(1 for img in result["images"] if img["status"] == "NOT_ANALYSABLE")
    print(f"wrote {out}: Comprehensive 3D SR {sr.SOPInstanceUID} for study {result['study_uid']} "
          f"({findings} finding(s), {gated} image(s) not analysable"
          f"{', patient from the original' if context else ''})")
    return 0


def _patient(config, result: dict):
    """The patient and study of the result's originals in the blob store (D-022); None, with a one-line
    warning, when they are not there (the SR then carries UIDs only, as before)."""
    from radstream.domain.errors import StageError
    from radstream.services.export.patient_context import patient_context
    from radstream.streams.blobstore import open_blob_store

    try:
        return patient_context(open_blob_store(config.blob_url), result)
    except (StageError, ValueError, OSError) as exc:
        reason = exc.reason if isinstance(exc, StageError) else str(exc)
        print(f"warning: the SR carries no patient (the PACS must match it by Study Instance UID): {reason}",
              file=sys.stderr)
        return None


def _latest_final(config, study: str) -> dict:
    from radstream.services.results import study_results

    latest = None
    try:
        for result in study_results(config.kafka, study=study):  # final results only; a late amendment supersedes
            latest = result
    except (LookupError, TimeoutError, RuntimeError) as exc:
        raise CliError(str(exc)) from None
    if latest is None:
        raise CliError(f"no final result for study {study} on study.results")
    return latest


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("sr", help="write a study's final result as a DICOM Structured Report (TID 1500)")
    source = sp.add_mutually_exclusive_group(required=True)
    source.add_argument("--study", help="Study Instance UID: its latest final result on study.results")
    source.add_argument("--result", metavar="FILE.json", help="one result as JSON (`radstream results --json`)")
    sp.add_argument("--out", required=True, metavar="FILE.dcm")
    sp.add_argument("--bootstrap", metavar="HOST:PORT")
    sp.set_defaults(func=_sr)
