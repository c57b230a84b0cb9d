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


def page_images(pdf: bytes, directory: Path, dpi: int = 50) -> list[bytes]:
    """Each page of ``pdf`` rendered by pdftoppm as a greyscale bitmap (PGM bytes)."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "in.pdf").write_bytes(pdf)
    subprocess.run(["pdftoppm", "-r", str(dpi), "-gray", str(directory / "in.pdf"), str(directory / "page")],
                   check=True, capture_output=True, timeout=120)
    return [page.read_bytes() for page in sorted(directory.glob("page-*.pgm"))]
