"""What a visible signature block shows (signer, role, time) and in which font.

The text is set in Noto Sans (the templates' headings use it), a subset of which each
signature embeds in its appearance stream: PDF/A-2 wants every font used for rendering
embedded, annotation appearances included, so the standard font Courier (never embedded) is
not used. pyHanko's glyph accumulator writes glyph widths in font units, which PDF reads as
thousandths of an em: the font must have 1000 units per em, as Noto Sans has (Liberation Sans
and DejaVu Sans have 2048 and would be drawn twice as wide).
A character the font has no glyph for is written as its base letter without accents, or as
``?``, never as the font's .notdef glyph (which PDF/A-2 also forbids); nothing is refused.

Where the block goes is ``signing.placement``'s business.
"""

from __future__ import annotations

import io
import os
import threading
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import uharfbuzz as hb
from fontTools import subset, ttLib
from pyhanko.pdf_utils import generic
from pyhanko.pdf_utils.font.api import FontEngine, FontEngineFactory
from pyhanko.pdf_utils.font.opentype import CIDFont, CIDFontType2, GlyphAccumulator, _read_ps_name
from pyhanko.pdf_utils.layout import AxisAlignment, InnerScaling, Margins, SimpleBoxLayoutRule
from pyhanko.pdf_utils.text import TextBoxStyle
from pyhanko.pdf_utils.writer import BasePdfFileWriter
from pyhanko.stamp import TextStampStyle

from kmop.errors import SigningError

STAMP_TIME_FORMAT = "%Y-%m-%d %H:%M:%S %Z"
_BRUSSELS = ZoneInfo("Europe/Brussels")
STAMP_TEXT = "Digitaal ondertekend door: %(signer)s\nRol: %(role)s\nTijdstip: %(time)s"

#: The stamp font: the environment's choice, else the one fonts-noto-core installs
#: (scripts/setup.sh and the Dockerfile install it).
STAMP_FONT_ENV = "KMOP_STAMP_FONT"
STAMP_FONT_CANDIDATES = (Path("/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf"),)
_UNITS_PER_EM = 1000
FONT_SIZE = 8


class StampFontMissing(SigningError):
    """No usable font for the signature block: the message names the paths looked at, or why
    the font found cannot be used."""


@cache
def stamp_font_path() -> Path:
    configured = os.environ.get(STAMP_FONT_ENV)
    candidates = (Path(configured),) if configured else STAMP_FONT_CANDIDATES
    for path in candidates:
        if path.is_file():
            return path
    raise StampFontMissing(
        f"no font for the signature block: none of {', '.join(map(str, candidates))} exists "
        f"(install fonts-noto-core, or name a TrueType/OpenType font in {STAMP_FONT_ENV})")


@dataclass(frozen=True)
class _LoadedFont:
    """The stamp font, prepared and parsed once per process; shared by every signature's
    glyph accumulator, which only reads it."""

    data: bytes
    characters: frozenset[int]
    tt: ttLib.TTFont
    hb_font: hb.Font
    ps_name: str
    glyph_set: Any
    reverse_cmap: dict[str, set[int]]


#: What a stamp can print as given: Latin letters with any accents, digits, punctuation, the
#: euro sign. Other characters are written as their base letter or ``?`` (``printable``).
_STAMP_CHARACTERS = (*range(0x20, 0x7F), *range(0xA0, 0x250), *range(0x1E00, 0x1F00), *range(0x2010, 0x2027),
                     *range(0x2030, 0x203B), 0x20AC)


@cache
def _loaded_font() -> _LoadedFont:
    """The stamp font cut down to what a stamp prints, without its layout tables (kerning,
    ligatures) and hinting: fontTools decompiles the layout tables of the whole font each time
    it subsets (about 150 ms for Noto Sans), and each signature embeds a subset."""
    path = stamp_font_path()
    options = subset.Options(layout_features=[], hinting=False, notdef_outline=True, glyph_names=False)
    options.drop_tables += ["GSUB", "GPOS", "GDEF", "BASE", "JSTF", "MATH", "FFTM", "DSIG"]
    with ttLib.TTFont(path) as font:
        units_per_em = font["head"].unitsPerEm
        if units_per_em != _UNITS_PER_EM:
            raise StampFontMissing(f"the signature block's font {path} has {units_per_em} units per em; "
                                   f"pyHanko draws only fonts of {_UNITS_PER_EM} correctly (Noto Sans has)")
        subsetter = subset.Subsetter(options)
        subsetter.populate(unicodes=_STAMP_CHARACTERS)
        subsetter.subset(font)
        out = io.BytesIO()
        font.save(out)
    data = out.getvalue()
    tt = ttLib.TTFont(io.BytesIO(data))
    for table in tt.keys():  # every table parsed now: the font is shared between threads
        tt[table]
    return _LoadedFont(data, frozenset(tt.getBestCmap()), tt, hb.Font(hb.Face(data)), _read_ps_name(tt),
                       tt.getGlyphSet(preferCFF=True), tt["cmap"].buildReversed())


class _StampGlyphs(GlyphAccumulator):
    """pyHanko's glyph accumulator (HarfBuzz shaping, fontTools subsetting) over the font
    prepared once per process, with the embedded subset made once per set of glyphs: the
    stamps of one signer differ only in the digits of their time, so every digit is always
    in the subset and the subset is kept per process. ``GlyphAccumulatorFactory`` would read
    and parse the font file and subset it again for every signature (about 40 ms of CPU even
    for the prepared font, against about 1.5 ms here).

    It sets up what pyHanko 0.38's accumulator keeps (``__init__`` is its own, with the
    shared font) and keeps its shaping and PDF objects: tests/test_pdfa.py checks what it
    writes.
    """

    def __init__(self, writer: BasePdfFileWriter, obj_stream=None) -> None:  # type: ignore[no-untyped-def]
        font = _loaded_font()
        FontEngine.__init__(self, writer, font.ps_name, embedded_subset=True, obj_stream=obj_stream,
                            font_size=FONT_SIZE)
        self.hb_font = font.hb_font
        self.tt = font.tt
        self._font_ref = writer.allocate_placeholder()
        self.cff_charset = None
        self.use_raw_gids = True
        self.cidfont_obj = CIDFontType2(font.tt, font.ps_name, self.subset_prefix)
        self.features = None
        self.units_per_em = _UNITS_PER_EM
        self._glyphs: dict[int, tuple[int, int]] = {}
        self._glyph_set = font.glyph_set
        self._cid_to_unicode: dict[int, str] = {}
        self._GlyphAccumulator__reverse_cmap = font.reverse_cmap
        self.ot_language_tag = self.ot_script_tag = self.writing_direction = self.bcp47_lang_code = None
        self._subset_created = self._write_prepared = False

    def prepare_write(self) -> None:
        if self._write_prepared:
            return
        cmap = self.tt.getBestCmap()
        for char in _ALWAYS_EMBEDDED:
            if ord(char) in cmap:
                self._get_cid_and_width(self.tt.getGlyphID(cmap[ord(char)]))
        glyphs = frozenset(self._glyphs)
        key = (stamp_font_path(), glyphs)
        with _SUBSETS_LOCK:
            program = _SUBSETS.get(key)
        if program is None:
            program = _subset_program(glyphs)
            with _SUBSETS_LOCK:
                _SUBSETS[key] = program
                while len(_SUBSETS) > _SUBSETS_KEPT:
                    del _SUBSETS[next(iter(_SUBSETS))]
        self._subset_created = True
        font = self.cidfont_obj
        font.set_font_file = lambda writer: _embed_program(font, writer, program)  # type: ignore[method-assign]
        super().prepare_write()


def _subset_program(glyph_ids: frozenset[int]) -> bytes:
    """The font program of the stamp font cut to ``glyph_ids``, which keep their numbers (the
    text refers to glyphs by them), as pyHanko cuts it."""
    options = subset.Options(layout_closure=False, retain_gids=True, hinting=False, notdef_outline=True)
    with ttLib.TTFont(io.BytesIO(_loaded_font().data)) as font:
        subsetter = subset.Subsetter(options=options)
        subsetter.populate(gids=sorted(glyph_ids))
        subsetter.subset(font)
        out = io.BytesIO()
        font.save(out)
    return out.getvalue()


def _embed_program(font: CIDFont, writer: BasePdfFileWriter, program: bytes) -> generic.IndirectObject:
    """What ``CIDFontType2.set_font_file`` does, with the font program given."""
    stream = generic.StreamObject(stream_data=program)
    stream.compress()
    reference = writer.add_object(stream)
    font._font_descriptor["/FontFile2"] = reference
    return reference


_ALWAYS_EMBEDDED = "0123456789:-+ "
_SUBSETS: dict[tuple[Path, frozenset[int]], bytes] = {}
_SUBSETS_KEPT = 64
_SUBSETS_LOCK = threading.Lock()


class _StampFontFactory(FontEngineFactory):
    def create_font_engine(  # type: ignore[no-untyped-def]
        self, writer: BasePdfFileWriter, obj_stream=None
    ) -> GlyphAccumulator:
        if obj_stream is None and writer.stream_xrefs:
            obj_stream = writer.prepare_object_stream()
        return _StampGlyphs(writer, obj_stream)


_STAMP_STYLE: TextStampStyle | None = None
_STYLE_LOCK = threading.Lock()


def stamp_style() -> TextStampStyle:
    """The signature block's style (built on first use, so that a process that signs nothing
    visible needs no font)."""
    global _STAMP_STYLE
    with _STYLE_LOCK:
        if _STAMP_STYLE is None:
            _loaded_font()  # a missing font fails here, with the paths looked at
            inner = SimpleBoxLayoutRule(x_align=AxisAlignment.ALIGN_MIN, y_align=AxisAlignment.ALIGN_MID,
                                        margins=Margins(left=5, right=5, top=3, bottom=3),
                                        inner_content_scaling=InnerScaling.SHRINK_TO_FIT)
            _STAMP_STYLE = TextStampStyle(
                stamp_text=STAMP_TEXT,
                border_width=1,
                timestamp_format=STAMP_TIME_FORMAT,
                text_box_style=TextBoxStyle(font=_StampFontFactory(), font_size=FONT_SIZE, leading=FONT_SIZE + 2,
                                            box_layout_rule=inner),
                inner_content_layout=SimpleBoxLayoutRule(x_align=AxisAlignment.ALIGN_MIN,
                                                         y_align=AxisAlignment.ALIGN_MID),
            )
        return _STAMP_STYLE


def text_params(signer: str, role_name: str, now: datetime | None = None) -> dict[str, str]:
    """The stamp's signer and role, in characters the font has (pyHanko's own signer name would
    be drawn as it is), and the signing time on the Belgian clock the documents' own dates and
    footers use. pyHanko fills its own ``ts`` from the machine's zone (a certificate issued on 8
    December would read 7 December 23:30 UTC), so the stamp shows ``time``, taken here a few
    milliseconds before pyHanko takes the signing time."""
    moment = (now or datetime.now(timezone.utc)).astimezone(_BRUSSELS)
    return {"signer": printable(signer), "role": printable(role_name), "time": moment.strftime(STAMP_TIME_FORMAT)}


def printable(value: str) -> str:
    """``value`` in characters the stamp font has: composed (NFC), each missing one as its
    base letter or ``?``; line breaks and other control characters as spaces."""
    known = _loaded_font().characters
    out = []
    for char in unicodedata.normalize("NFC", value):
        if unicodedata.category(char)[0] == "C":
            out.append(" ")
        elif ord(char) in known:
            out.append(char)
        else:
            base = "".join(c for c in unicodedata.normalize("NFKD", char) if ord(c) in known
                           and not unicodedata.combining(c) and unicodedata.category(c)[0] != "C")
            out.append(base or "?")
    return "".join(out)
