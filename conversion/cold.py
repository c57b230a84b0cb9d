"""One-off conversion with ``soffice --convert-to``: the slow path.

Every call starts a whole LibreOffice with a new profile and ends it again, which costs
seconds per document that a warm :class:`conversion.ConverterPool` instance does not pay. Use it
as the baseline of a benchmark, or as a fallback when no pool is available. Calls may run in
parallel: each has its own profile directory.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from conversion.executables import find_soffice
from conversion.export_options import DOCX_IMPORT_FILTER, PDFA_2B_FILTER_DATA, convert_to_argument
from conversion.processes import kill_process_group
from kmop.errors import ConversionError, ConversionTimeout

_OUTPUT_TAIL_CHARS = 2000


def convert_cold(docx: bytes, timeout: float = 120.0, *, soffice: str | None = None) -> bytes:
    """Convert a .docx document to PDF/A-2b (fonts embedded) with a fresh LibreOffice process.

    Raises ConversionTimeout if LibreOffice takes longer than ``timeout`` seconds (its whole
    process group is killed), ConversionError if it produces no PDF. Needs LibreOffice 7.4 or
    later for the filter options on the command line.
    """
    executable = find_soffice(soffice)
    with tempfile.TemporaryDirectory(prefix="kmop-cold-") as scratch:
        work = Path(scratch)
        source = work / "document.docx"
        source.write_bytes(docx)
        out_dir = work / "out"
        command = [
            executable,
            f"-env:UserInstallation={(work / 'profile').as_uri()}",
            "--headless", "--invisible", "--nocrashreport", "--nodefault", "--nologo",
            "--nofirststartwizard", "--norestore",
            f"--infilter={DOCX_IMPORT_FILTER}",
            "--convert-to", convert_to_argument(PDFA_2B_FILTER_DATA),
            "--outdir", str(out_dir),
            str(source),
        ]  # fmt: skip
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            output, _ = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            kill_process_group(process)
            process.communicate()
            raise ConversionTimeout(
                f"{executable} --convert-to did not finish within {timeout:g} s and was killed"
            ) from exc
        finally:
            kill_process_group(process)  # nothing may outlive the call, whatever happened
        pdf = out_dir / "document.pdf"
        if not pdf.is_file():
            text = output.decode(errors="replace").strip()[-_OUTPUT_TAIL_CHARS:]
            raise ConversionError(
                f"{executable} --convert-to produced no PDF (exit code {process.returncode}): {text or '(no output)'}"
            )
        return pdf.read_bytes()
