"""`radstream models ...`: build, encrypt, verify, calibrate, measure and compile the models.

Thin handlers over radstream.models. `compile` exports each model's raw graph to ONNX,
checks it against torch, and builds its TensorRT engine into the engine cache when
TensorRT and a GPU are there. Its exit code: 0 when every model asked for was exported,
matched torch within tolerance and (where TensorRT is usable) compiled; 1 when any of
that failed for some model; TensorRT being absent is not a failure (the ONNX files are
still written, and the infer stage runs those models on torch).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path

from radstream.services.commands.errors import EXIT_ERROR, EXIT_USAGE, CliError


def register(subparsers: argparse._SubParsersAction) -> None:
    models = subparsers.add_parser("models", help="model registry tools").add_subparsers(dest="models_command",
                                                                                         required=True)
    sp = models.add_parser("build-demo", help="train the demo models on synthetic phantoms and write their manifests")
    sp.add_argument("--registry", help="registry folder (default: the shipped models/registry)")
    sp.add_argument("--seed", type=int, default=0)
    sp.add_argument("--only", metavar="NAME[,NAME...]",
                    help="rebuild only these models (default: the whole demo ensemble, the QC models included); "
                         "NAME@VERSION: an earlier version kept in versions/ (demo-classifier@1)")
    sp.set_defaults(func=cmd_build_demo)
    sp = models.add_parser("encrypt", help="encrypt weights with AES-256-GCM under RADSTREAM_MODEL_KEY(_FILE)")
    sp.add_argument("input")
    sp.add_argument("output")
    sp.add_argument("--manifest", help="bind the artifact to this manifest's model name and version, and point "
                    "the manifest at it (a v1 artifact as IN is re-encrypted: the migration)")
    sp.add_argument("--model", help="without --manifest: the model name to bind to")
    sp.add_argument("--model-version", help="without --manifest: the model version to bind to")
    sp.set_defaults(func=cmd_encrypt)
    sp = models.add_parser("verify", help="exit 0 when an encrypted artifact authenticates under the key")
    sp.add_argument("file")
    sp.set_defaults(func=cmd_verify)
    sp = models.add_parser("calibrate", help="fit a model's temperature on held-out phantoms, into its manifest")
    sp.add_argument("name")
    sp.add_argument("--registry", help="registry folder (default: the shipped models/registry)")
    sp.add_argument("--images", type=int, default=200)
    sp.add_argument("--seed", type=int, default=271828)
    sp.set_defaults(func=cmd_calibrate)
    sp = models.add_parser("dataset-stats", help="a DICOM folder's mean and std under a model's input profile")
    sp.add_argument("folder")
    sp.add_argument("--manifest", help="use this manifest's profile (default: the default profile)")
    sp.add_argument("--write", action="store_true", help="write the statistics into --manifest")
    sp.set_defaults(func=cmd_dataset_stats)
    sp = models.add_parser("ablate", help="CLAHE on/off and LANCZOS vs bilinear on our data: AUC difference with a CI")
    sp.add_argument("--train", type=int, default=400)
    sp.add_argument("--held-out", type=int, default=200)
    sp.add_argument("--epochs", type=int, default=6)
    sp.add_argument("--seed", type=int, default=0)
    sp.set_defaults(func=cmd_ablate)
    sp = models.add_parser("evaluate", help="every detector in force and their ensemble by each fusion method "
                                            "(WBF, NMW, Soft-NMS) on fresh phantoms: recall, precision, AUC, "
                                            "lesion-level AP, paired-bootstrap CIs")
    sp.add_argument("--images", type=int, default=200)
    sp.add_argument("--seed", type=int, default=31_337, help="phantom seed (training used 0)")
    sp.add_argument("--registry", help="registry folder (default: RADSTREAM_MODEL_REGISTRY or models/registry)")
    sp.set_defaults(func=cmd_evaluate)
    sp = models.add_parser("keygen", help="print a new random 32-byte key, base64")
    sp.set_defaults(func=cmd_keygen)
    sp = models.add_parser("compile", help="export ONNX, check it against torch, build TensorRT engines (when installed)")
    sp.add_argument("--models", metavar="A,B", help="only these models (default: the models in force)")
    sp.add_argument("--max-batch", type=int, default=64, help="largest batch the engines take (default 64)")
    sp.add_argument("--out", metavar="DIR", help="ONNX folder (default: <engine cache>/onnx; the engines go to "
                                                 "RADSTREAM_ENGINE_CACHE, default ~/.cache/radstream/engines)")
    sp.add_argument("--fp32", action="store_true", help="build FP32 engines (default FP16)")
    sp.set_defaults(func=cmd_compile)
    from radstream.services.commands.models_rollout import register_rollout

    register_rollout(models)  # promote, rollback, versions, compare (D-056)


def cmd_build_demo(args: argparse.Namespace) -> int:
    from radstream.models.registry import default_registry_dir
    from radstream.models.training.train_demo import DEMO_MODELS, EARLIER_VERSIONS, build_demo, build_earlier_version
    from radstream.models.training.train_qc import QC_MODELS, build_qc_demo

    registry = Path(args.registry) if args.registry else default_registry_dir()
    earlier = {f"{m.name}@{m.version}": m for m in EARLIER_VERSIONS}  # versions/ beside the defaults (D-056)
    known = {m.name for m in (*DEMO_MODELS, *QC_MODELS)}
    wanted = set(args.only.split(",")) if args.only else known
    unknown = wanted - known - set(earlier)
    if unknown:
        raise CliError(f"not a demo model: {', '.join(sorted(unknown))} (earlier versions: "
                       f"{', '.join(sorted(earlier))})", EXIT_USAGE)
    chosen = tuple(m for m in DEMO_MODELS if m.name in wanted)
    progress = functools.partial(print, flush=True)  # training takes minutes: show it live, even in a log file
    manifests = build_demo(registry, seed=args.seed, models=chosen, progress=progress) if chosen else []
    manifests += [build_earlier_version(registry, spec, seed=args.seed, progress=progress)
                  for name, spec in sorted(earlier.items()) if name in wanted]
    manifests += [build_qc_demo(registry, seed=args.seed, progress=progress, spec=spec)
                  for spec in QC_MODELS if spec.name in wanted]
    for m in manifests:
        print(f"{m.name} v{m.version}: {json.dumps(m.validation, sort_keys=True)}")
    return 0


def cmd_encrypt(args: argparse.Namespace) -> int:
    from radstream.models import crypto
    from radstream.models.manifest import (
        ArtifactRef,
        ModelLoadError,
        ModelManifest,
        sha256_file,
    )

    try:
        key = crypto.load_key()
        data = Path(args.input).read_bytes()
        manifest = ModelManifest.read(Path(args.manifest)) if args.manifest else None
    except (crypto.ModelKeyError, ModelLoadError, OSError) as exc:
        raise CliError(str(exc)) from None
    if manifest is not None:
        model, version = manifest.name, manifest.version
    elif args.model and args.model_version:
        model, version = args.model, args.model_version
    else:
        raise CliError("the artifact is bound to a model: pass --manifest M (or --model NAME --model-version V)",
                       EXIT_USAGE)
    if data[: len(crypto.MAGIC_V1)] == crypto.MAGIC_V1:  # the migration: v1 (unbound) -> v2 (bound)
        try:
            data = crypto.decrypt_v1(data, key)
        except crypto.DecryptionError as exc:
            raise CliError(f"{args.input}: {exc}") from None
        print(f"{args.input}: a v1 artifact, re-encrypted bound to {model} v{version}")
    elif crypto.is_encrypted(data):
        raise CliError(f"{args.input} is already encrypted")
    out = Path(args.output)
    out.write_bytes(crypto.encrypt(data, key, model, version))
    digest = sha256_file(out)
    print(f"wrote {out} (sha256 {digest})")
    if manifest is not None:
        rel = os.path.relpath(out.resolve(), Path(args.manifest).resolve().parent)
        manifest.artifact = ArtifactRef(rel, digest, encrypted=True)
        manifest.write(Path(args.manifest))
        print(f"updated {args.manifest}: artifact {rel}, encrypted")
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from radstream.models import crypto

    try:
        data = Path(args.file).read_bytes()
        model, version = crypto.binding_of(data)
        crypto.decrypt(data, crypto.load_key(), model, version)
    except (crypto.ModelKeyError, crypto.DecryptionError) as exc:
        raise CliError(f"{args.file}: {exc}") from None
    except OSError as exc:
        raise CliError(f"{args.file}: {exc.strerror}") from None
    print(f"{args.file}: authenticates under the key, bound to {model} v{version}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from radstream.models.training.calibration import calibrate_model
    from radstream.models.manifest import ModelLoadError
    from radstream.models.registry import default_registry_dir

    path = (Path(args.registry) if args.registry else default_registry_dir()) / f"{args.name}.json"
    try:
        calibrate_model(path, images=args.images, seed=args.seed)
    except (ModelLoadError, ValueError) as exc:
        raise CliError(str(exc)) from None
    return 0


def cmd_dataset_stats(args: argparse.Namespace) -> int:
    from radstream.models.training.dataset_stats import dataset_stats, dicom_images
    from radstream.models.manifest import ModelLoadError, ModelManifest
    from radstream.models.profile import InputProfile

    try:
        manifest = ModelManifest.read(Path(args.manifest)) if args.manifest else None
    except ModelLoadError as exc:
        raise CliError(str(exc)) from None
    profile = manifest.input_profile if manifest else InputProfile()
    images = dicom_images(Path(args.folder), progress=lambda m: print(m, file=sys.stderr))
    if not images:
        raise CliError(f"no decodable DICOM image under {args.folder}")
    mean, std, pixels = dataset_stats(images, profile)
    print(f"{len(images)} image(s), {pixels} pixels under profile {profile.hash()}: mean {mean:.6f}, std {std:.6f}")
    if manifest and args.write:
        manifest.input_profile = profile.with_stats(mean, std)
        manifest.write(Path(args.manifest))
        print(f"wrote mean/std into {args.manifest} (profile now {manifest.input_profile.hash()}; retrain the model "
              "with these statistics before serving it)")
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from radstream.models.training.ablation import ablate

    report = ablate(n_train=args.train, n_held_out=args.held_out, epochs=args.epochs, seed=args.seed)
    for name, row in report.items():
        if "difference" in row:
            print(f"{name:<28} AUC {row['auc']:.3f}  difference {row['difference']:+.3f} "
                  f"(95% CI {row['ci_low']:+.3f} to {row['ci_high']:+.3f})")
        else:
            print(f"{name:<28} AUC {row['auc']:.3f}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    import numpy as np

    from radstream.models.backends.torch_backend import TorchBackend
    from radstream.models.training.demo_data import generate_phantoms
    from radstream.models.training.ensemble_eval import evaluate_ensemble
    from radstream.models.training.evaluation import evaluate_detector, predict_images
    from radstream.models.registry import default_registry_dir, load_manifests

    registry = Path(args.registry) if args.registry else default_registry_dir()
    detectors = {name: TorchBackend(m) for name, m in load_manifests(registry).items() if m.task == "detector"}
    if not detectors:
        raise CliError(f"{registry}: no detector manifests")
    print(f"generating {args.images} phantoms (seed {args.seed}) ...", flush=True)
    phantoms = generate_phantoms(np.random.default_rng(args.seed), args.images)
    images = [p.image for p in phantoms]
    results = {name: predict_images(backend, images) for name, backend in detectors.items()}  # one pass each
    for name, backend in detectors.items():
        m = evaluate_detector(backend, phantoms, results=results[name])
        print(f"{name:<14} recall {m['recall']:.3f}  precision {m['precision']:.3f} at {m['threshold']:.3f}  "
              f"image AUC {m['image_auc']:.3f}", flush=True)
    report = evaluate_ensemble(detectors, phantoms, results=results)
    for name, ap in report["average_precision"].items():
        print(f"AP@IoU{report['min_iou']} {name:<14} {ap:.4f}")
    low, high = report["gain_ci95"]
    print(f"ensemble - best member ({report['best_member']}): {report['gain']:+.4f} (95% CI {low:+.4f} to {high:+.4f})")
    print(f"fusion methods (paired bootstrap over images, {report['resamples']} resamples, 95% CIs):")
    for method, m in report["methods"].items():
        print(f"  {method:<9} AP {m['average_precision']:.4f} ({m['ap_ci95'][0]:.4f} to {m['ap_ci95'][1]:.4f})  "
              f"vs best member {m['gain']:+.4f} ({m['gain_ci95'][0]:+.4f} to {m['gain_ci95'][1]:+.4f})  "
              f"vs wbf {m['vs_wbf']:+.4f} ({m['vs_wbf_ci95'][0]:+.4f} to {m['vs_wbf_ci95'][1]:+.4f})", flush=True)
    return 0


def cmd_keygen(args: argparse.Namespace) -> int:
    from radstream.models import crypto

    print(crypto.new_key())
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    from radstream.models.backends.select import probe_platform
    from radstream.models.manifest import ModelLoadError
    from radstream.models.registry import default_registry_dir, load_manifests
    from radstream.streams.config import Config

    if args.max_batch < 1:
        raise CliError(f"--max-batch must be >= 1, got {args.max_batch}", EXIT_USAGE)
    config = Config.from_env()
    names = [n.strip() for n in args.models.split(",") if n.strip()] if args.models else config.models
    try:
        manifests = load_manifests(config.model_registry or default_registry_dir(), names)
    except ModelLoadError as exc:
        raise CliError(str(exc), EXIT_USAGE) from None
    onnx_dir = Path(args.out) if args.out else config.engine_cache / "onnx"
    chosen = []
    for m in manifests.values():
        if {"onnx", "tensorrt"} & set(m.backends):
            chosen.append(m)
        else:
            print(f"{m.name}: skipped (manifest backends: {', '.join(m.backends)})")
    if not chosen:
        print("nothing to compile: no model asked for lists onnx or tensorrt in its manifest's backends")
        return 0
    platform = probe_platform(config.device)
    if platform.tensorrt_version is None:
        print(f"{platform.tensorrt_problem}: writing ONNX files only, no engines")
    elif not platform.cuda:
        print(f"TensorRT {platform.tensorrt_version} but no CUDA device: writing ONNX files only, no engines")
    failed = [m.name for m in chosen if not _compile_one(m, onnx_dir, config.engine_cache, args, platform)]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return EXIT_ERROR
    return 0


def _compile_one(manifest, onnx_dir: Path, cache_dir: Path, args: argparse.Namespace, platform) -> bool:
    """Export, parity, engine for one model, one progress line per step; False on a failure."""
    from radstream.models.backends.export import PARITY_TOLERANCE, export_checked
    from radstream.models.manifest import ModelLoadError

    name = manifest.name
    t0 = time.perf_counter()
    try:
        path = onnx_dir / f"{manifest.key}.{manifest.content_hash()}.onnx"
        diffs = export_checked(manifest, path)
        print(f"{name}: ONNX {path} ({time.perf_counter() - t0:.1f} s)", flush=True)
    except (ModelLoadError, ValueError) as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return False
    verdict = "ok" if max(diffs) <= PARITY_TOLERANCE else "FAILED"
    print(f"{name}: parity max |onnx - torch| per output {', '.join(f'{d:.1e}' for d in diffs)} "
          f"(tolerance {PARITY_TOLERANCE:.0e}): {verdict}", flush=True)
    if verdict != "ok":
        return False
    if "tensorrt" not in manifest.backends or platform.tensorrt_version is None or not platform.cuda:
        return True
    from radstream.models.backends.tensorrt_backend import build_cached_engine

    t0 = time.perf_counter()
    try:
        engine = build_cached_engine(manifest, path, cache_dir, args.max_batch, platform.compute_capability,
                                     platform.tensorrt_version, fp16=not args.fp32)
    except (ModelLoadError, RuntimeError, OSError) as exc:
        print(f"{name}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return False
    print(f"{name}: TensorRT engine {engine} ({time.perf_counter() - t0:.1f} s)", flush=True)
    return True
