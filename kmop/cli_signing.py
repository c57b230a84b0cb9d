"""``kmop signing-request``: documents issued to be signed elsewhere, against the configured store.

``accept`` exits 0 when the signed PDF is accepted (or was, the same file, before), 1 when it is
refused (the reason on stderr: an invalid or untrusted signature, a changed document, a step
the dossier no longer allows, a request accepted before with another file), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from kmop.cli_ops import configured
from kmop.errors import KmopError, StepOutOfOrder

EXIT_OK = 0
EXIT_REFUSED = 1


def _requests(trust_roots: list | None = None):  # type: ignore[no-untyped-def]
    from kmop.signing_requests import SigningRequests

    store, tracker = configured()
    return SigningRequests(store, tracker, trust_roots=trust_roots)


def _list(args: argparse.Namespace) -> int:
    requests = _requests()
    found = [{**r.to_dict(), "status": requests.status(r)} for r in requests.for_dossier(args.dossier)]
    if args.json:
        print(json.dumps(found, indent=2, ensure_ascii=False))
        return EXIT_OK
    for request in found:
        print(f"{request['request_id']}  {request['kind']:<16} {request['status']:<9} {request['created_at']}")
    if not found:
        print(f"dossier {args.dossier} has no signing requests")
    return EXIT_OK


def _show(args: argparse.Namespace) -> int:
    requests = _requests()
    request = requests.get(args.dossier, args.request_id)
    event = requests.accepted_event(request)
    view = {**request.to_dict(), "status": requests.status(request),
            "accepted": None if event is None else {k: event.payload.get(k) for k in ("key", "sha256", "signer")}}
    if args.json:
        print(json.dumps(view, indent=2, ensure_ascii=False))
        return EXIT_OK
    print(f"signing request {request.request_id}: {request.kind} of dossier {request.dossier_id}, {view['status']}")
    print(f"  issued {request.created_at}  sha256={request.sha256}  sign into field {request.field_name}")
    if view["accepted"]:
        print(f"  accepted: {view['accepted']['key']}  sha256={view['accepted']['sha256']}  "
              f"signed by {view['accepted']['signer']}")
    return EXIT_OK


def _download(args: argparse.Namespace) -> int:
    requests = _requests()
    request = requests.get(args.dossier, args.request_id)
    out = Path(args.out or f"{request.request_id}.pdf")
    out.write_bytes(requests.issued_pdf(request))
    print(f"{out}  sha256={request.sha256}  sign into field {request.field_name}")
    return EXIT_OK


def _accept(args: argparse.Namespace) -> int:
    from api.dossiers import document_name
    from kmop.signing_requests import (
        ExternalSignatureRefused,
        SigningRequestClosed,
        external_trust_roots,
        load_trust_roots,
    )

    try:
        returned = Path(args.file).read_bytes()
    except OSError as exc:
        raise KmopError(f"{args.file}: cannot be read ({exc.strerror})") from exc
    roots = load_trust_roots([Path(p) for p in args.trust], "--trust") if args.trust else external_trust_roots()
    requests = _requests(roots)
    try:
        accepted = requests.accept(args.dossier, args.request_id, returned)
    except ExternalSignatureRefused as exc:
        print(f"refused: {exc.reason}", file=sys.stderr)
        return EXIT_REFUSED
    except (StepOutOfOrder, SigningRequestClosed) as exc:
        print(f"refused: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    result = accepted.result
    what = "accepted" if result.created else "accepted before"
    print(f"{what}: {document_name(result.step, result.kind, result.version)}  sha256={result.sha256}  "
          f"signed by {accepted.signer}")
    return EXIT_OK


def add_commands(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("signing-request", help="documents issued to be signed elsewhere (an eID card): "
                                 "list, show, download, accept the signed PDF")
    actions = parser.add_subparsers(dest="action", required=True)

    listing = actions.add_parser("list", help="a dossier's signing requests and their status")
    listing.add_argument("dossier")
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=_list)

    show = actions.add_parser("show", help="one signing request: issued or accepted, SHA-256, signature field")
    show.add_argument("dossier")
    show.add_argument("request_id")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=_show)

    download = actions.add_parser("download", help="the PDF as issued, to be signed")
    download.add_argument("dossier")
    download.add_argument("request_id")
    download.add_argument("--out", help="the file to write (default: <request_id>.pdf)")
    download.set_defaults(handler=_download)

    accept = actions.add_parser("accept", help="accept the signed PDF as the dossier's document, or say why not "
                                "(exit 1)")
    accept.add_argument("dossier")
    accept.add_argument("request_id")
    accept.add_argument("file", help="the signed PDF")
    accept.add_argument("--trust", action="append", metavar="PEM",
                        help="trust root (repeatable); default $KMOP_EXTERNAL_TRUST_ROOTS")
    accept.set_defaults(handler=_accept)
