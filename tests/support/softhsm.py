"""A SoftHSM2 token for the PKCS#11 tests, with SoftHSM2's library found the way the system finds it.

Fixtures:
- ``softhsm_token`` (session): a token in a temporary folder holding the test PKI's agency key
  and certificate, written with `certomancer alch` (the key never lands in a file).
- ``token``: the identities file naming that token, with ``SOFTHSM2_CONF`` pointing at the
  token's configuration for the test alone (monkeypatched, so restored afterwards).

``softhsm_module()`` looks, in order, at ``PKCS11_TEST_MODULE``, p11-kit's module registry
(``/usr/share/p11-kit/modules/*.module`` and ``/etc/pkcs11/modules``, as p11-kit-aware software
loads modules), the dynamic linker's cache (``ldconfig -p``), and the library folders beside
``softhsm2-util``. Without SoftHSM2 the tests skip with the reason; CI runs with ``--no-skips``,
where that skip fails the run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.pki_fixtures import ARCH, TestPki

PIN = "2468"
SO_PIN = "13579"
TOKEN_LABEL = "kmop-test"
LIBRARY = "libsofthsm2.so"
P11_KIT_MODULE_DIRS = (Path("/usr/share/p11-kit/modules"), Path("/etc/pkcs11/modules"))


def softhsm_module(env: dict[str, str] | None = None) -> Path | None:
    """SoftHSM2's PKCS#11 library, or None when the system has none."""
    env = dict(os.environ) if env is None else env
    configured = env.get("PKCS11_TEST_MODULE")
    if configured:
        return Path(configured) if Path(configured).is_file() else None
    for candidate in (*_p11_kit_modules(), *_linker_cache(), *_beside_the_tool()):
        if candidate.is_file():
            return candidate
    return None


def _p11_kit_modules() -> list[Path]:
    found = []
    for directory in P11_KIT_MODULE_DIRS:
        for config in sorted(directory.glob("*.module")) if directory.is_dir() else []:
            for line in config.read_text(errors="replace").splitlines():
                name, _, value = line.partition(":")
                if name.strip() == "module" and "softhsm" in value:
                    path = Path(value.strip())
                    found.append(path if path.is_absolute() else Path("/usr/lib/pkcs11") / path)
    return found


def _linker_cache() -> list[Path]:
    try:
        listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [Path(line.rsplit("=>", 1)[1].strip()) for line in listing.splitlines()
            if LIBRARY in line and "=>" in line]


def _beside_the_tool() -> list[Path]:
    tool = shutil.which("softhsm2-util")
    if tool is None:
        return []
    prefix = Path(tool).resolve().parent.parent
    return [prefix / "lib" / "softhsm" / LIBRARY, *sorted(prefix.glob(f"lib/*/softhsm/{LIBRARY}"))]


@dataclass(frozen=True)
class SoftHsmToken:
    module: Path
    conf: Path
    identities: Path


@pytest.fixture(scope="session")
def softhsm_token(test_pki: TestPki, tmp_path_factory: pytest.TempPathFactory) -> SoftHsmToken:
    module = softhsm_module()
    if module is None or shutil.which("softhsm2-util") is None:
        pytest.skip("SoftHSM2 is not installed (apt-get install softhsm2): no libsofthsm2.so in p11-kit's "
                    "modules, the linker cache or beside softhsm2-util")
    directory = tmp_path_factory.mktemp("softhsm")
    (directory / "tokens").mkdir()
    conf = directory / "softhsm2.conf"
    conf.write_text(f"directories.tokendir = {directory / 'tokens'}\nobjectstore.backend = file\nlog.level = ERROR\n")
    env = {**os.environ, "SOFTHSM2_CONF": str(conf)}  # for the child processes only
    subprocess.run(["softhsm2-util", "--init-token", "--free", "--label", TOKEN_LABEL, "--pin", PIN,
                    "--so-pin", SO_PIN], check=True, capture_output=True, env=env, timeout=60)
    subprocess.run([sys.executable, "-m", "certomancer", "--config", str(test_pki.config_path),
                    "--key-root", str(test_pki.directory), "--service-url-prefix", test_pki.animator.prefix,
                    "alch", "--cert", "agency", "--include-chain", "--pin", PIN, "--module", str(module),
                    "--token-label", TOKEN_LABEL, ARCH],
                   check=True, capture_output=True, env=env, timeout=120)
    shutil.copy(test_pki.root_path, directory / "root.pem")
    identities = directory / "identities.json"
    identities.write_text(json.dumps({
        "trust_roots": ["root.pem"],
        "identities": {"agency": {"type": "pkcs11", "module": str(module), "token_label": TOKEN_LABEL,
                                  "key_label": "agency", "cert_label": "agency", "pin_env": "KMOP_TOKEN_PIN"}},
        "timestamp_authority": {"url": test_pki.tsa_url},
    }))
    return SoftHsmToken(module, conf, identities)


@pytest.fixture
def token(softhsm_token: SoftHsmToken, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The identities file of the SoftHSM2 token; SoftHSM2 reads ``SOFTHSM2_CONF`` when this process
    first loads it, so it is set for every test that may be the first."""
    monkeypatch.setenv("SOFTHSM2_CONF", str(softhsm_token.conf))
    return softhsm_token.identities


__all__ = ["PIN", "SoftHsmToken", "TOKEN_LABEL", "softhsm_module"]
