"""unoserver's server, with every document loaded hidden.

Runs under the Python that has ``uno`` (the distribution's or LibreOffice's, not ours), as
``<uno python> -m kmop_unoserver`` with unoserver's own arguments: it imports nothing but
unoserver, ``uno`` and the standard library. :func:`conversion.executables.unoserver_pythonpath`
links it beside the unoserver package.

unoserver 3.7 loads a document with ``ReadOnly`` alone, so LibreOffice gives it a visible view in
a frame of its own: even headless it shows the window, lays the view out for the window's size
and paints it, none of which a conversion looks at. A one-page document's conversion spent a
quarter to two fifths of LibreOffice's CPU on that (two warm instances side by side: the sworn
statement 115 -> 75 ms, the quote 163 -> 119 ms; the 20-page pack, whose time goes to its
layout, 737 -> 734 ms). Loaded with ``Hidden``, the PDF is byte for byte the same (every kind
compared).
"""

from __future__ import annotations

from typing import Any

from unoserver import converter, server  # first: it imports uno, the module a wrong Python lacks

from com.sun.star.beans import PropertyValue  # isort: skip - importable once uno is


class HiddenLoadingDesktop:
    """LibreOffice's Desktop, loading each component with ``Hidden`` set; the rest passes through."""

    def __init__(self, desktop: Any) -> None:
        self._desktop = desktop

    def loadComponentFromURL(self, url: str, target: str, search_flags: int, arguments: tuple) -> Any:  # noqa: N802 - UNO's name
        hidden = tuple(a for a in arguments if a.Name != "Hidden") + (PropertyValue(Name="Hidden", Value=True),)
        return self._desktop.loadComponentFromURL(url, target, search_flags, hidden)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._desktop, name)


class HiddenLoadingConverter(converter.UnoConverter):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.desktop = HiddenLoadingDesktop(self.desktop)


def main() -> None:
    # unoserver's server makes its converter as converter.UnoConverter(...), looked up when it starts
    converter.UnoConverter = HiddenLoadingConverter
    server.main()


if __name__ == "__main__":
    main()
