"""Weights encrypted at rest: load with the right key, refuse a wrong key or a tampered file."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from radstream.models import crypto
from radstream.models.backends.torch_backend import TorchBackend
from radstream.models.manifest import ModelLoadError, production_refusal, read_weights
from radstream.models.registry import default_registry_dir, load_manifests


def _cli(env: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "radstream.services.cli", *args], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def encrypted_registry(tmp_path):
    reg = tmp_path / "registry"
    shutil.copytree(default_registry_dir(), reg)
    art = tmp_path / "artifacts"
    shutil.copytree(default_registry_dir().parent / "artifacts", art)
    key = crypto.new_key()
    env = {"RADSTREAM_MODEL_KEY": key}
    plain = art / Path(load_manifests(reg, ["demo-classifier"])["demo-classifier"].artifact.path).name
    res = _cli(env, "models", "encrypt", str(plain), f"{plain}.enc", "--manifest", str(reg / "demo-classifier.json"))
    assert res.returncode == 0, res.stderr
    plain.unlink()  # nothing in plaintext left beside it
    return reg, art, key


def test_encrypted_model_loads_and_predicts_like_the_plaintext_one(encrypted_registry, monkeypatch) -> None:
    reg, _, key = encrypted_registry
    manifest = load_manifests(reg, ["demo-classifier"])["demo-classifier"]
    assert manifest.artifact.encrypted and json.loads((reg / "demo-classifier.json").read_text())["artifact"]["encrypted"]
    monkeypatch.setenv("RADSTREAM_MODEL_KEY", key)
    plain = TorchBackend(load_manifests(default_registry_dir(), ["demo-classifier"])["demo-classifier"])
    enc = TorchBackend(manifest)
    x = np.random.default_rng(0).normal(size=(2, 1, 256, 256)).astype(np.float32)
    assert [o.classifications for o in enc.predict(x)] == [o.classifications for o in plain.predict(x)]


def test_wrong_key_missing_key_and_tampering_are_refused(encrypted_registry, monkeypatch, tmp_path) -> None:
    reg, art, key = encrypted_registry
    manifest = load_manifests(reg, ["demo-classifier"])["demo-classifier"]
    monkeypatch.setenv("RADSTREAM_MODEL_KEY", crypto.new_key())
    with pytest.raises(ModelLoadError, match="wrong key or tampered"):
        TorchBackend(manifest)
    monkeypatch.delenv("RADSTREAM_MODEL_KEY")
    with pytest.raises(ModelLoadError, match="RADSTREAM_MODEL_KEY"):
        TorchBackend(manifest)
    key_file = tmp_path / "key"
    key_file.write_text(key + "\n")
    monkeypatch.setenv("RADSTREAM_MODEL_KEY_FILE", str(key_file))
    TorchBackend(manifest)  # the Secret-mount path works
    enc = next(art.glob("demo-classifier-*.pt.enc"))
    data = bytearray(enc.read_bytes())
    data[-5] ^= 1
    enc.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match="sha256 mismatch"):
        TorchBackend(manifest)
    # Even with the manifest's hash updated, GCM authentication refuses the changed byte.
    with pytest.raises(crypto.DecryptionError, match="wrong key or tampered"):
        crypto.decrypt(bytes(data), crypto.parse_key(key), manifest.name, manifest.version)


def test_verify_cli_exit_codes(encrypted_registry) -> None:
    _, art, key = encrypted_registry
    enc = str(next(art.glob("demo-classifier-*.pt.enc")))
    ok = _cli({"RADSTREAM_MODEL_KEY": key}, "models", "verify", enc)
    assert ok.returncode == 0 and "authenticates" in ok.stdout and "bound to demo-classifier v" in ok.stdout
    bad = _cli({"RADSTREAM_MODEL_KEY": crypto.new_key()}, "models", "verify", enc)
    assert bad.returncode == 1 and bad.stderr.count("\n") == 1 and "wrong key or tampered" in bad.stderr
    no_key = _cli({"RADSTREAM_MODEL_KEY": "", "RADSTREAM_MODEL_KEY_FILE": ""}, "models", "verify", enc)
    assert no_key.returncode == 1 and "RADSTREAM_MODEL_KEY" in no_key.stderr


def test_infer_stage_with_a_bad_key_reports_unhealthy(encrypted_registry, tmp_path) -> None:
    import time
    import urllib.request

    reg, _, _ = encrypted_registry
    env = {**os.environ, "RADSTREAM_MODEL_REGISTRY": str(reg), "RADSTREAM_MODEL_KEY": crypto.new_key(),
           "RADSTREAM_BOOTSTRAP": "127.0.0.1:9", "RADSTREAM_HOME": str(tmp_path / "home")}
    proc = subprocess.Popen([sys.executable, "-m", "radstream.services.cli", "stage", "infer", "--model",
                             "demo-classifier"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        run_dir = tmp_path / "home" / "run"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(run_dir.glob("*.json")):
            time.sleep(0.2)
        entry = json.loads(next(run_dir.glob("*.json")).read_text())
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(entry["health_url"] + "/healthz", timeout=5)
        assert info.value.code == 503
        body = json.loads(info.value.read())
        assert body["healthy"] is False and "wrong key or tampered" in body["error"]
    finally:
        proc.terminate()
        proc.wait(30)
    assert proc.returncode == 1


def _point_manifest_at(reg: Path, name: str, artifact: Path, **changes) -> None:
    """Rewrite a manifest's artifact (and any other field given) as an operator could."""
    path = reg / f"{name}.json"
    doc = json.loads(path.read_text())
    doc["artifact"] = {"path": os.path.relpath(artifact, reg), "sha256": hashlib.sha256(artifact.read_bytes()).hexdigest(),
                       "encrypted": True}
    doc.update(changes)
    path.write_text(json.dumps(doc))


def test_the_artifact_is_bound_to_its_model_name_and_version(encrypted_registry, monkeypatch, tmp_path) -> None:
    """The AAD binds name and version: the classifier's ciphertext, under the same key, is
    refused as another model, as another version of itself, and with its header rewritten."""
    reg, art, key = encrypted_registry
    monkeypatch.setenv("RADSTREAM_MODEL_KEY", key)
    enc = next(art.glob("demo-classifier-*.pt.enc"))
    original = load_manifests(reg, ["demo-classifier"])["demo-classifier"]
    assert crypto.binding_of(enc.read_bytes()) == ("demo-classifier", original.version)
    _point_manifest_at(reg, "demo-classifier", enc, version=original.version + "-next")
    with pytest.raises(ModelLoadError, match=f"bound to demo-classifier v{original.version}, not demo-classifier v"):
        TorchBackend(load_manifests(reg, ["demo-classifier"])["demo-classifier"])
    _point_manifest_at(reg, "demo-qc", enc)
    with pytest.raises(ModelLoadError, match="bound to demo-classifier .*another model"):
        TorchBackend(load_manifests(reg, ["demo-qc"])["demo-qc"])
    # the header claims another version, the ciphertext stays: GCM refuses (the binding is AAD)
    data = enc.read_bytes()
    end = len(crypto.MAGIC) + 2 + int.from_bytes(data[8:10], "big")
    forged = crypto.encrypt(b"", crypto.parse_key(key), "demo-classifier", "9")
    forged_end = len(crypto.MAGIC) + 2 + int.from_bytes(forged[8:10], "big")
    relabelled = forged[:forged_end] + data[end:]
    with pytest.raises(crypto.DecryptionError, match="wrong key or tampered"):
        crypto.decrypt(relabelled, crypto.parse_key(key), "demo-classifier", "9")


def test_a_v1_artifact_is_refused_and_models_encrypt_migrates_it(encrypted_registry, monkeypatch, tmp_path) -> None:
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    reg, _, key = encrypted_registry
    plain = read_weights(load_manifests(default_registry_dir(), ["demo-classifier"])["demo-classifier"])
    nonce = os.urandom(crypto.NONCE_BYTES)  # the v1 format, as files written before the binding are
    v1 = tmp_path / "classifier.v1.enc"
    v1.write_bytes(crypto.MAGIC_V1 + nonce + AESGCM(crypto.parse_key(key)).encrypt(nonce, plain, crypto.AAD_V1))
    _point_manifest_at(reg, "demo-classifier", v1)
    monkeypatch.setenv("RADSTREAM_MODEL_KEY", key)
    with pytest.raises(ModelLoadError, match="v1 artifact, bound to no model: re-encrypt"):
        TorchBackend(load_manifests(reg, ["demo-classifier"])["demo-classifier"])
    res = _cli({"RADSTREAM_MODEL_KEY": key}, "models", "encrypt", str(v1), str(tmp_path / "classifier.v2.enc"),
               "--manifest", str(reg / "demo-classifier.json"))
    assert res.returncode == 0 and "a v1 artifact, re-encrypted bound to demo-classifier" in res.stdout, res.stderr
    manifest = load_manifests(reg, ["demo-classifier"])["demo-classifier"]
    assert read_weights(manifest) == plain


def test_production_refuses_plaintext_weights_and_the_dev_key(encrypted_registry) -> None:
    reg, _, key = encrypted_registry
    dev_key = (Path(__file__).resolve().parents[3] / "k8s" / "overlays" / "dev" / "dev-only-model.key").read_text()
    assert crypto.is_dev_key(crypto.parse_key(dev_key)), "DEV_KEY_SHA256 must name k8s/overlays/dev's key"
    shipped = load_manifests(default_registry_dir(), ["demo-classifier"])["demo-classifier"]
    assert "refuses unencrypted weights" in production_refusal(shipped, {"RADSTREAM_MODEL_KEY": key})
    encrypted = load_manifests(reg, ["demo-classifier"])["demo-classifier"]
    assert "refuses the dev-only model key" in production_refusal(encrypted, {"RADSTREAM_MODEL_KEY": dev_key})
    assert production_refusal(encrypted, {"RADSTREAM_MODEL_KEY": key}) is None


def test_a_prod_infer_stage_refuses_the_shipped_plaintext_weights(tmp_path) -> None:
    """The startup check as a pod runs it: RADSTREAM_ENV=prod, the demo's plaintext weights,
    the dev key: /healthz answers 503 with the reason and nothing is consumed."""
    import time
    import urllib.request

    dev_key = Path(__file__).resolve().parents[3] / "k8s" / "overlays" / "dev" / "dev-only-model.key"
    trusted = tmp_path / "trusted-keys"
    trusted.write_text("")
    env = {**os.environ, "RADSTREAM_ENV": "prod", "RADSTREAM_MODEL_KEY_FILE": str(dev_key),
           "RADSTREAM_TRUSTED_KEYS": str(trusted), "RADSTREAM_BOOTSTRAP": "127.0.0.1:9",
           "RADSTREAM_KAFKA_SECURITY_PROTOCOL": "SSL",  # RADSTREAM_ENV=prod refuses a plaintext bus
           "RADSTREAM_HOME": str(tmp_path / "home")}
    env.pop("RADSTREAM_MODEL_KEY", None)
    proc = subprocess.Popen([sys.executable, "-m", "radstream.services.cli", "stage", "infer", "--model",
                             "demo-classifier"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        run_dir = tmp_path / "home" / "run"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not list(run_dir.glob("*.json")):
            time.sleep(0.2)
        entry = json.loads(next(run_dir.glob("*.json")).read_text())
        with pytest.raises(urllib.error.HTTPError) as info:
            urllib.request.urlopen(entry["health_url"] + "/healthz", timeout=5)
        assert info.value.code == 503
        assert "RADSTREAM_ENV=prod refuses unencrypted weights" in json.loads(info.value.read())["error"]
    finally:
        proc.terminate()
        proc.wait(30)
