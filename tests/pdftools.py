"""Independent checks of PDFs with poppler: pdfsig (signatures, with an NSS trust store) and pdftotext."""

from __future__ import annotations

import subprocess
from pathlib import Path


def nss_trust_store(directory: Path, root_pem: Path) -> Path:
    """An NSS database at ``directory`` that trusts ``root_pem`` for signing."""
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{directory}", "--empty-password"], check=True,
                   capture_output=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{directory}", "-n", "kmop-root", "-t", "CT,C,C",
                    "-i", str(root_pem)], check=True, capture_output=True)
    return directory


def pdfsig(pdf: Path, nss_dir: Path) -> str:
    result = subprocess.run(["pdfsig", "-nssdir", str(nss_dir.resolve()), str(pdf)],
                            capture_output=True, text=True, timeout=60)
    return result.stdout + result.stderr


def pdftotext(pdf: Path) -> str:
    return subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True,
                          check=True, timeout=60).stdout
