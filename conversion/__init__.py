"""Converting .docx documents to PDF/A-2b with LibreOffice.

:class:`ConverterPool` keeps warm LibreOffice instances (unoserver) and supervises them; it is
the way to convert in the service. :func:`convert_cold` starts a LibreOffice per document: the
slow path, for baselines and fallbacks.
"""

from conversion.cold import convert_cold
from conversion.pool import ConverterPool, PoolStats

__all__ = ["ConverterPool", "PoolStats", "convert_cold"]
