"""``kmop renew-timestamps``: a new document timestamp for the stored B-LTA documents that need one.

Exits 0 when every document is renewed or not due, 1 when one failed (the reason printed on its
line), 2 for a usage error. Meant to run on a schedule (daily or weekly); see ``kmop.renewals``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json

from kmop.cli_ops import configured
from kmop.errors import KmopError

EXIT_OK = 0
EXIT_FAILED = 1


def _days(value: str) -> int:
    try:
        days = int(value)
    except ValueError:
        days = -1
    if days < 0:
        raise argparse.ArgumentTypeError(f"{value!r}: must be a whole number of days, 0 or more")
    return days


def renew_timestamps(args: argparse.Namespace) -> int:
    from kmop.renewals import Renewer, recorded_lta_documents
    from kmop.settings import load_settings
    from signing.identities import IdentityStore
    from signing.timestamping import timestamper_for

    settings = load_settings()
    if settings.identities_file is None:
        raise KmopError("KMOP_IDENTITIES is not set: name the identities file (trust roots, timestamp authority)")
    identities = IdentityStore.from_file(settings.identities_file)
    timestamper = timestamper_for(settings.tsa_url, identities)
    if timestamper is None and not args.dry_run:
        raise KmopError("no timestamp authority configured: set KMOP_TSA_URL or timestamp_authority in the "
                        "identities file")
    store, tracker = configured()
    renewer = Renewer(store, identities, timestamper, margin=dt.timedelta(days=args.margin_days),  # type: ignore[arg-type]
                      dry_run=args.dry_run)
    try:
        outcomes = renewer.run(recorded_lta_documents(store, tracker))
    finally:
        identities.close()
    if args.json:
        print(json.dumps([vars(o) for o in outcomes], indent=2))
    else:
        for outcome in outcomes:
            target = f" -> {outcome.renewed_key}" if outcome.renewed_key else ""
            print(f"{outcome.status:<8} {outcome.key}{target}: {outcome.reason}")
        if not outcomes:
            print("no B-LTA documents recorded")
    return EXIT_FAILED if any(o.status == "failed" for o in outcomes) else EXIT_OK


def add_commands(commands: argparse._SubParsersAction) -> None:
    renew = commands.add_parser("renew-timestamps",
                                help="add a new document timestamp to the stored B-LTA documents that need one")
    renew.add_argument("--margin-days", type=_days, default=365,
                       help="renew when the latest timestamp's authority certificate expires within this many days "
                            "(default 365)")
    renew.add_argument("--dry-run", action="store_true", help="only list what is due")
    renew.add_argument("--json", action="store_true")
    renew.set_defaults(handler=renew_timestamps)
