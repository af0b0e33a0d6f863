"""A real Orthanc (Debian's `orthanc` + `orthanc-dicomweb`) as the hospital's PACS in tests.

Used through the `orthanc` / `orthanc_factory` fixtures in tests/conftest.py:

    def test_x(orthanc):
        orthanc.store_files([rg1])                              # storescu into its DICOM port
        orthanc.add_modality("radstream", "RADSTREAM", port)    # PUT /modalities/radstream
        orthanc.rest("POST", "/modalities/radstream/store", orthanc.studies()[0])
        orthanc.add_dicomweb_server("radstream", stow_url, token="t")  # PUT /dicom-web/servers/radstream
        orthanc.rest("POST", "/dicom-web/servers/radstream/stow", {"Resources": [...]})
        orthanc_factory(lua_scripts=[script])                   # Lua callbacks, StableAge 2 s

Each Orthanc listens on free loopback ports (HTTP and DICOM), keeps its database in a
temp folder, has the DICOMweb plugin at `/dicom-web/`, and is stopped after the test.
Modalities and DICOMweb servers can be given at start (`modalities=`, `servers=`) or
changed at run time through Orthanc's own REST API (the methods above).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from base64 import b64encode
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from radstream.services.broker import free_port

ORTHANC = "/usr/sbin/Orthanc"
DICOMWEB_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
AE_TITLE = "ORTHANC"


def orthanc_missing() -> str | None:
    """Why Orthanc cannot run here (the skip reason), or None."""
    if shutil.which(ORTHANC) is None and shutil.which("Orthanc") is None:
        return "Orthanc is not installed (apt-get install orthanc orthanc-dicomweb)"
    if not DICOMWEB_PLUGIN.exists():
        return f"the Orthanc DICOMweb plugin is missing ({DICOMWEB_PLUGIN}; apt-get install orthanc-dicomweb)"
    return None


class OrthancError(Exception):
    """Orthanc's REST API answered an error status (the message carries its body)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Orthanc:
    """A running Orthanc: its ports, AE title, and a small REST client."""

    http_port: int
    dicom_port: int
    aet: str
    folder: Path
    process: subprocess.Popen
    credentials: tuple[str, str] | None = None  # HTTP Basic, when started with users=

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        return f"{self.http_url}/dicom-web"

    @property
    def log(self) -> str:
        return (self.folder / "orthanc.log").read_text(errors="replace")

    def rest(self, method: str, path: str, body: Any = None, timeout_s: float = 120.0,
             headers: dict[str, str] | None = None) -> Any:
        """Call Orthanc's REST API; the answer parsed as JSON when it is JSON. A dict or list body is sent
        as JSON, a str or bytes as is. OrthancError on an HTTP error status."""
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else (body if isinstance(body, str) else json.dumps(body)).encode()
        request = urllib.request.Request(self.http_url + path, data=data, method=method, headers=dict(headers or {}))
        if self.credentials:
            user, password = self.credentials
            request.add_header("Authorization", "Basic " + b64encode(f"{user}:{password}".encode()).decode())
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                raw = response.read()
                ctype = response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as exc:
            raise OrthancError(exc.code, f"Orthanc {method} {path}: HTTP {exc.code}: "
                                         f"{exc.read().decode(errors='replace')[:2000]}") from None
        if "json" in ctype and raw:
            return json.loads(raw)
        return raw

    def add_modality(self, name: str, aet: str, port: int, host: str = "127.0.0.1") -> None:
        """`PUT /modalities/{name}`: a DICOM peer Orthanc can C-STORE to (`POST /modalities/{name}/store`)."""
        self.rest("PUT", f"/modalities/{name}", {"AET": aet, "Host": host, "Port": port})

    def add_dicomweb_server(self, name: str, url: str, token: str | None = None) -> None:
        """`PUT /dicom-web/servers/{name}`: a DICOMweb peer (`POST /dicom-web/servers/{name}/stow`).
        `url` is the DICOMweb root (e.g. http://127.0.0.1:8080/dicom-web); `token` goes in as a bearer."""
        server: dict[str, Any] = {"Url": url.rstrip("/") + "/"}
        if token is not None:
            server["HttpHeaders"] = {"Authorization": f"Bearer {token}"}
        self.rest("PUT", f"/dicom-web/servers/{name}", server)

    def store_files(self, files: list[Path], calling_aet: str = "MODALITY") -> None:
        """Send files into Orthanc with dcmtk's storescu, as a modality would."""
        sent = subprocess.run(["storescu", "-xv", "-aet", calling_aet, "-aec", self.aet, "127.0.0.1",
                               str(self.dicom_port), *map(str, files)], capture_output=True, text=True, timeout=120)
        assert sent.returncode == 0, f"storescu into Orthanc failed: {sent.stdout}{sent.stderr}"

    def upload(self, data: bytes) -> dict:
        """`POST /instances`: one DICOM file into Orthanc over HTTP (no dcmtk needed)."""
        return self.rest("POST", "/instances", data, headers={"Content-Type": "application/dicom"})

    def studies(self) -> list[str]:
        """Orthanc's study identifiers (not Study Instance UIDs)."""
        return self.rest("GET", "/studies")

    def instance_file(self, sop_uid: str) -> bytes:
        """The file Orthanc holds for a SOP Instance UID (`/tools/lookup`, then `/instances/{id}/file`)."""
        [found] = [r for r in self.rest("POST", "/tools/lookup", sop_uid) if r["Type"] == "Instance"]
        return self.rest("GET", f"/instances/{found['ID']}/file")

    def study_uid(self, orthanc_id: str) -> str:
        return self.rest("GET", f"/studies/{orthanc_id}")["MainDicomTags"]["StudyInstanceUID"]

    def restart(self, timeout_s: float = 30.0) -> None:
        """Start this Orthanc again, stopped, on the same ports and database (a PACS back from downtime)."""
        self.stop()
        with (self.folder / "orthanc.log").open("ab") as log:
            self.process = subprocess.Popen([shutil.which(ORTHANC) or "Orthanc", str(self.folder / "orthanc.json")],
                                            stdout=log, stderr=subprocess.STDOUT, cwd=self.folder)
        _wait_until_up(self, timeout_s)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def orthanc_config(folder: Path, http_port: int, dicom_port: int, aet: str = AE_TITLE,
                   modalities: dict[str, Any] | None = None, servers: dict[str, Any] | None = None,
                   users: dict[str, str] | None = None, lua_scripts: list[Path] | None = None,
                   extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """The JSON configuration: loopback only, storage in `folder`, the DICOMweb plugin on, and the
    Lua scripts given (e.g. examples/orthanc/route-to-radstream.lua, run on OnStableStudy after StableAge)."""
    config: dict[str, Any] = {
        "Name": f"radstream-test-{http_port}",
        "StorageDirectory": str(folder / "db"),
        "IndexDirectory": str(folder / "db"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": aet,
        "RemoteAccessAllowed": False,  # loopback only
        "AuthenticationEnabled": bool(users),
        "RegisteredUsers": users or {},
        "Plugins": [str(DICOMWEB_PLUGIN)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "Servers": servers or {}},
        "DicomModalities": modalities or {},
        "DicomCheckCalledAet": True,
        "StableAge": 2,  # seconds before OnStableStudy (the Lua routing example in docs/integration.md)
        "LuaScripts": [str(Path(p).resolve()) for p in lua_scripts or []],
        "HttpTimeout": 60,
        "DicomScuTimeout": 30,
    }
    config.update(extra or {})
    return config


def start_orthanc(folder: Path, timeout_s: float = 30.0, **config: Any) -> Orthanc:
    """Start Orthanc from a generated config in `folder` and wait until `/system` answers."""
    folder.mkdir(parents=True, exist_ok=True)
    http_port, dicom_port = free_port(), free_port()
    while dicom_port == http_port:
        dicom_port = free_port()
    settings = orthanc_config(folder, http_port, dicom_port, **config)
    (folder / "orthanc.json").write_text(json.dumps(settings, indent=2))
    with (folder / "orthanc.log").open("wb") as log:
        process = subprocess.Popen([shutil.which(ORTHANC) or "Orthanc", str(folder / "orthanc.json")],
                                   stdout=log, stderr=subprocess.STDOUT, cwd=folder)
    users = settings["RegisteredUsers"]
    orthanc = Orthanc(http_port, dicom_port, settings["DicomAet"], folder, process,
                      next(iter(users.items())) if users else None)
    _wait_until_up(orthanc, timeout_s)
    return orthanc


def _wait_until_up(orthanc: Orthanc, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        if orthanc.process.poll() is not None:
            raise RuntimeError(f"Orthanc exited with {orthanc.process.returncode}: {orthanc.log[-3000:]}")
        try:
            system = orthanc.rest("GET", "/system", timeout_s=2)
            if system.get("DicomPort") == orthanc.dicom_port:
                plugins = orthanc.rest("GET", "/plugins", timeout_s=2)
                assert "dicom-web" in plugins, f"the DICOMweb plugin did not load: {orthanc.log[-3000:]}"
                return
        except (OSError, OrthancError):
            pass
        if time.monotonic() > deadline:
            orthanc.stop()
            raise RuntimeError(f"Orthanc did not answer /system in {timeout_s} s: {orthanc.log[-3000:]}")
        time.sleep(0.1)
