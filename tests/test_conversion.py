"""The converter pool against a real LibreOffice: output, concurrency and supervision.

One pool of two instances serves most tests; a fixture converts once on each instance before a
test, so an instance a previous test killed is replaced before the test starts counting.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docx
import pypdf
import pytest
from docx.oxml import OxmlElement
from docx.oxml.ns import qn

from conversion import ConverterPool, PoolStats, convert_cold
from conversion.indexes import needs_index_update
from kmop.errors import ConversionError, ConversionTimeout
from tests.pdftools import pdftotext
from tests.support.documents import make_docx, saved
from tests.support.sockets import listening_ports, request_waiting

MIXED_TEXT = 'Zoë Ünal – Łódź – 東京 <b>&amp; "quoted" & \'single\' </b>'
PDFA_ID_NS = "http://www.aiim.org/pdfa/ns/id/"


# -- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shared_pool() -> Iterator[ConverterPool]:
    with ConverterPool(size=2, conversion_timeout=60.0, max_conversions=100) as pool:
        yield pool


@pytest.fixture
def pool(shared_pool: ConverterPool) -> ConverterPool:
    """The shared pool with every instance running: conversions rotate through the instances."""
    for _ in range(shared_pool.size):
        shared_pool.convert(make_docx("warm-up"))
    return shared_pool


# -- output --------------------------------------------------------------------------------


def test_pdf_contains_the_document_text_with_markup_characters_and_non_latin_script(
    pool: ConverterPool, tmp_path: Path
) -> None:
    pdf = pool.convert(make_docx("Registration certificate", MIXED_TEXT))

    text = pdf_text(pdf, tmp_path)
    assert "Registration certificate" in text
    assert MIXED_TEXT in text


def test_pdf_declares_pdfa_2b_and_embeds_every_font(pool: ConverterPool, tmp_path: Path) -> None:
    pdf = pool.convert(make_docx("Sworn statement", MIXED_TEXT))

    assert pdfa_identification(pdf) == ("2", "B")
    fonts = pdf_fonts(pdf, tmp_path)
    assert fonts, "the PDF uses no fonts at all"
    assert [font for font in fonts if font["emb"] != "yes"] == []


def test_cold_conversion_produces_the_same_kind_of_pdf(tmp_path: Path) -> None:
    pdf = convert_cold(make_docx("Audit report", MIXED_TEXT))

    assert MIXED_TEXT in pdf_text(pdf, tmp_path)
    assert pdfa_identification(pdf) == ("2", "B")
    assert all(font["emb"] == "yes" for font in pdf_fonts(pdf, tmp_path))


def test_unreadable_document_raises_conversion_error_and_keeps_the_instance(pool: ConverterPool) -> None:
    groups_before = sorted(pool.process_group_ids())
    before = pool.stats()

    with pytest.raises(ConversionError, match="Could not load document") as raised:
        pool.convert(b"this is not a docx file")

    assert not isinstance(raised.value, ConversionTimeout)
    assert sorted(pool.process_group_ids()) == groups_before
    assert pool.stats().restarts == before.restarts
    assert pool.convert(make_docx("still working")).startswith(b"%PDF")


# -- indexes -------------------------------------------------------------------------------


def test_a_table_of_contents_is_brought_up_to_date(pool: ConverterPool, tmp_path: Path) -> None:
    text = pdf_text(pool.convert(docx_with_table_of_contents("Verouderde inhoud", "Inleiding")), tmp_path)

    assert "Verouderde inhoud" not in text
    assert text.count("Inleiding") == 2  # the heading and its entry in the table of contents


def test_a_document_without_fields_skips_the_update_pass(
    pool: ConverterPool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("conversion.pool.needs_index_update", lambda docx: False)

    text = pdf_text(pool.convert(docx_with_table_of_contents("Verouderde inhoud", "Inleiding")), tmp_path)

    assert "Verouderde inhoud" in text  # what the pass would have replaced


def test_only_a_field_in_the_main_document_part_asks_for_the_update() -> None:
    assert needs_index_update(docx_with_table_of_contents("Inhoud", "Inleiding"))
    assert not needs_index_update(make_docx("Geen velden"))
    with_page_number = docx.Document()
    with_page_number.add_paragraph("Tekst")
    append_field(with_page_number.sections[0].footer.paragraphs[0], "PAGE", "1")
    assert not needs_index_update(saved(with_page_number))
    assert needs_index_update(b"this is not a docx file")


_LOAD_BOTH_WAYS = """
import sys
from unoserver import converter, server
import kmop_unoserver
from com.sun.star.beans import PropertyValue

port, url = sys.argv[1], sys.argv[2]
for made in (kmop_unoserver.HiddenLoadingConverter, converter.UnoConverter):
    desktop = made(interface="127.0.0.1", port=port).desktop
    document = desktop.loadComponentFromURL(url, "_default", 0, (PropertyValue(Name="ReadOnly", Value=True),))
    print(made.__name__, document.getCurrentController().getFrame().getContainerWindow().isVisible())
    document.close(True)
server.main = lambda: print("server", converter.UnoConverter.__name__)
kmop_unoserver.main()
"""


def test_an_instance_loads_documents_hidden(pool: ConverterPool, tmp_path: Path) -> None:
    """A document loaded as the instance loads it gets no visible window (LibreOffice then
    neither lays out nor paints a view); loaded as unoserver alone loads it, it does."""
    group = pool.process_group_ids()[0]
    arguments = Path(f"/proc/{group}/cmdline").read_bytes().split(b"\0")
    environment = dict(line.split(b"=", 1) for line in Path(f"/proc/{group}/environ").read_bytes().split(b"\0") if line)
    document = tmp_path / "document.docx"
    document.write_bytes(make_docx("Verklaring op eer"))

    assert arguments[1:3] == [b"-m", b"kmop_unoserver"]
    loaded = subprocess.run(
        [arguments[0].decode(), "-c", _LOAD_BOTH_WAYS, arguments[arguments.index(b"--uno-port") + 1].decode(),
         document.as_uri()],
        env={"PYTHONPATH": environment[b"PYTHONPATH"].decode(), "PATH": os.environ["PATH"]},
        capture_output=True, text=True, timeout=60,
    )
    assert loaded.stdout.splitlines() == ["HiddenLoadingConverter False", "UnoConverter True",
                                          "server HiddenLoadingConverter"], loaded.stderr


# -- concurrency ---------------------------------------------------------------------------


def test_two_threads_convert_at_once_on_a_pool_of_two(pool: ConverterPool, tmp_path: Path) -> None:
    texts = ["Quote for dossier A", "Quote for dossier B"]
    results: dict[str, bytes] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(texts))

    def convert(text: str) -> None:
        document = make_docx(text)
        barrier.wait()
        try:
            results[text] = pool.convert(document)
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=convert, args=(text,)) for text in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)

    assert errors == []
    for text in texts:
        assert text in pdf_text(results[text], tmp_path)


# -- supervision ---------------------------------------------------------------------------


@pytest.mark.parametrize(("limit", "documents"), [
    ({"max_conversions": 2}, 3),  # replaced after its second document
    ({"max_memory_mb": 100}, 2),  # a LibreOffice that has converted holds well over 100 MB
], ids=["count", "memory"])
@pytest.mark.slow
def test_worn_instance_is_replaced_by_one_started_ahead(limit: dict[str, int], documents: int) -> None:
    with ConverterPool(size=1, **limit) as pool:
        first_group = pool.process_group_ids()

        pdfs = [pool.convert(make_docx(f"Document {number}")) for number in range(documents)]

        assert all(pdf.startswith(b"%PDF") for pdf in pdfs)
        # the replacement was started while the worn instance still converted, then swapped in
        assert pool.stats() == PoolStats(size=1, conversions=documents, restarts=1, timeouts=0, crashes=0,
                                         prestarted=1)
        assert pool.process_group_ids() != first_group
        wait_until_dead(first_group)  # the worn instance is retired, not left running


def test_instance_memory_is_measured_over_unoserver_and_its_libreoffice(pool: ConverterPool) -> None:
    measured = pool.resident_bytes()

    assert sorted(measured) == sorted(pool.process_group_ids())
    for group, resident in measured.items():
        members = live_processes(lambda pid, member_group, cmdline: member_group == group)
        assert any("soffice.bin" in member for member in members)
        now = sum(int(Path(f"/proc/{member.split()[0]}/statm").read_text().split()[1]) for member in members)
        assert resident > 100 * 2**20  # a LibreOffice that has converted holds well over 100 MB
        assert abs(now * os.sysconf("SC_PAGE_SIZE") - resident) < 0.3 * resident


def test_instance_within_its_memory_limit_and_count_is_kept(pool: ConverterPool) -> None:
    groups, before = pool.process_group_ids(), pool.stats()

    for number in range(3 * pool.size):
        pool.convert(make_docx(f"Document {number}"))

    assert pool.stats().restarts == before.restarts
    assert pool.process_group_ids() == groups


@pytest.mark.slow
def test_killed_instances_are_replaced_before_the_next_conversion(pool: ConverterPool) -> None:
    killed = pool.process_group_ids()
    before = pool.stats()
    for group in killed:
        os.killpg(group, signal.SIGKILL)
    wait_until_dead(killed)

    pdfs = [pool.convert(make_docx("after the crash")) for _ in killed]

    assert all(pdf.startswith(b"%PDF") for pdf in pdfs)
    after = pool.stats()
    assert after.crashes - before.crashes == len(killed)
    assert after.restarts - before.restarts == len(killed)
    assert set(pool.process_group_ids()).isdisjoint(killed)


@pytest.mark.slow
def test_conversion_survives_its_instance_dying_while_it_waits(pool: ConverterPool) -> None:
    # Freeze every instance so the conversion is stuck on one of them, then kill them all.
    groups = pool.process_group_ids()
    ports = listening_ports(groups)
    assert ports, "the instances listen on no TCP port"
    before = pool.stats()
    for group in groups:
        os.killpg(group, signal.SIGSTOP)
    outcome: list[bytes | BaseException] = []

    def convert() -> None:
        try:
            outcome.append(pool.convert(make_docx("retried on a fresh instance"), timeout=60))
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            outcome.append(error)

    converting = threading.Thread(target=convert)
    converting.start()
    deadline = time.monotonic() + 60  # the request reached a frozen server and waits there unread
    while not request_waiting(ports):
        assert converting.is_alive() and time.monotonic() < deadline, f"no request reached the frozen server: {outcome}"
        time.sleep(0.02)
    for group in groups:
        os.killpg(group, signal.SIGKILL)
    converting.join(120)

    assert len(outcome) == 1 and isinstance(outcome[0], bytes), outcome
    assert outcome[0].startswith(b"%PDF")
    assert pool.stats().crashes > before.crashes
    assert pool.stats().timeouts == before.timeouts


@pytest.mark.slow
def test_timeout_raises_and_the_pool_converts_again_afterwards(pool: ConverterPool, tmp_path: Path) -> None:
    before = pool.stats()

    with pytest.raises(ConversionTimeout):
        pool.convert(make_docx("too slow"), timeout=0.01)

    after_timeout = pool.stats()
    assert after_timeout.timeouts == before.timeouts + 1
    assert after_timeout.restarts == before.restarts + 1
    for _ in range(pool.size):
        assert "on time" in pdf_text(pool.convert(make_docx("on time")), tmp_path)


def test_start_failure_names_the_interpreter_and_quotes_its_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # This interpreter has unoserver but no uno module: the classic misconfiguration.
    monkeypatch.setenv("KMOP_UNO_PYTHON", sys.executable)
    pool = ConverterPool(size=1, start_timeout=30)

    with pytest.raises(ConversionError) as raised:
        pool.start()

    message = str(raised.value)
    assert sys.executable in message
    assert "No module named 'uno'" in message
    assert pool.process_group_ids() == []


def _soffice_failing_first(tmp_path: Path, failures: int) -> str:
    """An soffice that ends a second after it started, as a LibreOffice crashing at start does,
    its first ``failures`` times, and is the real one afterwards."""
    real = subprocess.run(["sh", "-c", "command -v soffice"], capture_output=True, text=True, check=True).stdout.strip()
    wrapper = tmp_path / "soffice"
    wrapper.write_text(f"""#!/bin/sh
count=$(cat "{tmp_path}/starts" 2>/dev/null || echo 0)
echo $((count + 1)) > "{tmp_path}/starts"
[ "$count" -lt {failures} ] && sleep 1 && exit 0
exec "{real}" "$@"
""")
    wrapper.chmod(0o755)
    return str(wrapper)


@pytest.mark.slow
def test_an_instance_whose_libreoffice_dies_while_starting_is_started_once_more(tmp_path: Path) -> None:
    with ConverterPool(size=1, start_timeout=60, soffice=_soffice_failing_first(tmp_path, 1)) as pool:
        (tmp_path / "out.pdf").write_bytes(pool.convert(make_docx("second start")))

        assert "second start" in pdftotext(tmp_path / "out.pdf")
        assert pool.stats().restarts == 1
    assert (tmp_path / "starts").read_text().strip() == "2"


def test_an_instance_that_dies_at_both_starts_fails_the_pool_start(tmp_path: Path) -> None:
    pool = ConverterPool(size=1, start_timeout=60, soffice=_soffice_failing_first(tmp_path, 2))

    with pytest.raises(ConversionError, match="LibreOffice ended while starting"):
        pool.start()

    assert (tmp_path / "starts").read_text().strip() == "2"
    assert pool.process_group_ids() == []


@pytest.mark.slow
def test_close_while_a_replacement_starts_leaves_no_process_behind() -> None:
    pool = ConverterPool(size=1, max_conversions=1)
    pool.start()
    work_dir = pool_work_dir(pool.process_group_ids()[0])
    assert pool.convert(make_docx("worn out at once")).startswith(b"%PDF")  # its successor now starts

    pool.close()

    assert live_processes(lambda pid, group, cmdline: str(work_dir) in cmdline) == []
    assert not work_dir.exists()


@pytest.mark.slow
def test_close_stops_every_process_and_removes_the_profiles() -> None:
    pool = ConverterPool(size=2)
    pool.start()
    groups = pool.process_group_ids()
    work_dir = pool_work_dir(groups[0])
    assert pool.convert(make_docx("before close")).startswith(b"%PDF")

    pool.close()

    assert live_processes(lambda pid, group, cmdline: group in groups or str(work_dir) in cmdline) == []
    assert not work_dir.exists()
    with pytest.raises(ConversionError, match="closed"):
        pool.convert(make_docx("after close"))


# -- helpers -------------------------------------------------------------------------------


def append_field(paragraph: Any, instruction: str, result: str) -> None:
    """A complex field as Word writes it: begin, instruction, separate, its last result, end."""

    def field_char(kind: str) -> None:
        element = OxmlElement("w:fldChar")
        element.set(qn("w:fldCharType"), kind)
        paragraph.add_run()._r.append(element)

    field_char("begin")
    instruction_text = OxmlElement("w:instrText")
    instruction_text.set(qn("xml:space"), "preserve")
    instruction_text.text = f" {instruction} "
    paragraph.add_run()._r.append(instruction_text)
    field_char("separate")
    paragraph.add_run(result)
    field_char("end")


def docx_with_table_of_contents(stale_entry: str, heading: str) -> bytes:
    """A table of contents whose last result is ``stale_entry``, before a level-1 ``heading``."""
    document = docx.Document()
    append_field(document.add_paragraph(), 'TOC \\o "1-3" \\h \\z \\u', stale_entry)
    document.add_heading(heading, level=1)
    document.add_paragraph("Tekst.")
    return saved(document)


def pdf_text(pdf: bytes, directory: Path) -> str:
    path = directory / "text.pdf"
    path.write_bytes(pdf)
    return pdftotext(path)


def pdfa_identification(pdf: bytes) -> tuple[str | None, str | None]:
    """(part, conformance) from the PDF's XMP metadata, as attributes or elements."""
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    metadata = reader.trailer["/Root"]["/Metadata"].get_object().get_data()
    root = ElementTree.fromstring(metadata)

    def value(name: str) -> str | None:
        qualified = f"{{{PDFA_ID_NS}}}{name}"
        for element in root.iter():
            if element.tag == qualified:
                return (element.text or "").strip()
            if qualified in element.attrib:
                return element.attrib[qualified].strip()
        return None

    return value("part"), value("conformance")


def pdf_fonts(pdf: bytes, directory: Path) -> list[dict[str, str]]:
    """pdffonts' table as dicts; columns are cut where its dashed header line has gaps."""
    path = directory / "fonts.pdf"
    path.write_bytes(pdf)
    lines = subprocess.run(
        ["pdffonts", str(path)], capture_output=True, text=True, check=True, timeout=60
    ).stdout.splitlines()
    header, dashes, rows = lines[0], lines[1], lines[2:]
    spans: list[tuple[int, int]] = []
    start = 0
    for part in dashes.split(" "):
        if part:
            spans.append((start, start + len(part)))
        start += len(part) + 1
    names = [header[begin:end].strip() for begin, end in spans]
    return [{name: row[begin:end].strip() for name, (begin, end) in zip(names, spans)} for row in rows if row.strip()]


def live_processes(match: Callable[[int, int, str], bool]) -> list[str]:
    """Running (not zombie) processes for which ``match(pid, process_group, cmdline)`` holds.

    Zombies are left out: where PID 1 does not reap orphans (this sandbox), a SIGKILLed
    soffice.bin stays a zombie, which holds no memory, files or ports.
    """
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        state, _parent, group = stat[stat.rindex(")") + 2 :].split()[:3]
        if state != "Z" and match(int(proc.name), int(group), cmdline):
            found.append(f"{proc.name} {state} {cmdline}")
    return found


def wait_until_dead(groups: list[int]) -> None:
    """Wait until no process of ``groups`` is running any more (bounded, not a timing assertion)."""
    deadline = time.monotonic() + 30
    while live_processes(lambda pid, group, cmdline: group in groups):
        assert time.monotonic() < deadline, "killed processes did not die"
        time.sleep(0.05)


def pool_work_dir(process_group: int) -> Path:
    """The pool's work directory, read from unoserver's ``--user-installation <dir>/instance-N/profile-M``."""
    arguments = Path(f"/proc/{process_group}/cmdline").read_bytes().split(b"\0")
    profile = Path(arguments[arguments.index(b"--user-installation") + 1].decode())
    return profile.parent.parent


@pytest.mark.slow
@pytest.mark.parametrize("killed", ["the worker process", "its whole process group"])
def test_instances_die_with_a_worker_killed_by_sigkill(tmp_path: Path, killed: str) -> None:
    """A worker killed outright (SIGKILL, OOM killer), alone or with every process of its group
    (``kill -9 -- -PGID``, a supervisor), leaves no LibreOffice running behind it."""
    script = (
        "from conversion import ConverterPool\n"
        "import sys, time\n"
        "pool = ConverterPool(size=1); pool.start()\n"
        "print(pool.process_group_ids()[0], flush=True)\n"
        "time.sleep(600)\n"
    )
    owner = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                             cwd=Path(__file__).resolve().parent.parent, start_new_session=True)
    group = int(owner.stdout.readline())
    os.killpg(group, 0)  # LibreOffice is running
    if killed == "the worker process":
        owner.send_signal(signal.SIGKILL)
    else:
        os.killpg(owner.pid, signal.SIGKILL)
    owner.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    raise AssertionError(f"process group {group} of the killed worker is still alive")


def _stand_in_unoserver(convert: Callable[..., object]) -> tuple[Any, list[dict[str, Any]]]:
    """An XML-RPC server answering one request with ``convert``, and the requests it got."""
    from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

    requests: list[dict[str, Any]] = []

    class Handler(SimpleXMLRPCRequestHandler):
        def decode_request_content(self, data: bytes) -> bytes | None:
            requests.append({"accept-encoding": self.headers.get("Accept-Encoding"), "size": len(data)})
            return super().decode_request_content(data)

    server = SimpleXMLRPCServer(("127.0.0.1", 0), Handler, logRequests=False, allow_none=True,
                                use_builtin_types=True)
    server.register_function(convert, "convert")
    threading.Thread(target=server.handle_request, daemon=True).start()
    return server, requests


def _instance_on(server: Any, work_dir: Path):
    from conversion.instance import ConverterInstance, InstanceSettings
    from conversion.ports import LoopbackPorts

    settings = InstanceSettings(soffice="soffice", uno_python=sys.executable, pythonpath=work_dir,
                                start_timeout=10, stop_grace=1)
    instance = ConverterInstance("fake", work_dir, settings, LoopbackPorts())
    instance._xmlrpc_port = server.server_address[1]  # this server instead of a started unoserver
    return instance


def test_documents_travel_as_files_in_the_instances_private_folder(tmp_path: Path) -> None:
    """Neither the .docx nor the PDF is sent base64-encoded in XML; the files are the
    instance's own (a folder only the service's user can enter) and gone afterwards."""
    docx, pdf = b"PK" + os.urandom(256 * 2**10), b"%PDF-1.7\n" + os.urandom(256 * 2**10)
    seen: dict[str, Any] = {}

    def convert(inpath, indata, outpath, *rest):
        folder = Path(inpath).parent
        seen.update(indata=indata, docx=Path(inpath).read_bytes(), mode=folder.stat().st_mode & 0o777,
                    same_folder=Path(outpath).parent == folder)
        Path(outpath).write_bytes(pdf)
        return None

    server, requests = _stand_in_unoserver(convert)
    try:
        assert _instance_on(server, tmp_path / "fake").convert(docx, timeout=60) == pdf
    finally:
        server.server_close()
    assert seen == {"indata": None, "docx": docx, "mode": 0o700, "same_folder": True}
    assert len(requests) == 1 and requests[0]["size"] < 4096
    assert "gzip" not in (requests[0]["accept-encoding"] or "")
    assert list((tmp_path / "fake" / "exchange").iterdir()) == []


def test_a_refused_conversion_leaves_no_file_behind(tmp_path: Path) -> None:
    def convert(inpath, indata, outpath, *rest):
        Path(outpath).write_bytes(b"%PDF-1.7 half")
        raise RuntimeError("Could not load document")

    server, _ = _stand_in_unoserver(convert)
    instance = _instance_on(server, tmp_path / "fake")
    instance.responsive = lambda: True  # the stand-in answers one request only
    try:
        with pytest.raises(ConversionError, match="Could not load document"):
            instance.convert(b"PK not a document", timeout=60)
    finally:
        server.server_close()
    assert list((tmp_path / "fake" / "exchange").iterdir()) == []
