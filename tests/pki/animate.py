"""Serve the test PKI (certomancer.yml) over HTTP on loopback, as `certomancer animate` does,
except that OCSP responses carry their times in whole seconds.

certomancer stamps an OCSP response's producedAt and thisUpdate with the current time,
microseconds included (``20261129091135.279867Z``). NSS's GeneralizedTime parser accepts no
fractional seconds (RFC 5280 forbids them in certificates and CRLs), so NSS found every
response malformed and, its OCSP check being soft-fail, accepted the certificate anyway; but
poppler 22.12 reads NSS's last error code instead of the verification's result, so pdfsig
reported "Unknown issue with Certificate or corrupted data" for certificates NSS had accepted.
OpenSSL's responder, for one, writes whole seconds.

    python tests/pki/animate.py --config CONFIG --key-root DIR --url-prefix http://127.0.0.1:PORT --port PORT
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True)
    parser.add_argument("--key-root", required=True)
    parser.add_argument("--url-prefix", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()

    from certomancer.integrations.animator import Animator, AnimatorArchStore
    from certomancer.registry import CertomancerConfig
    from werkzeug.serving import run_simple

    class WholeSecondOcspAnimator(Animator):
        def at_time(self, request: Any) -> dt.datetime:
            moment: dt.datetime = super().at_time(request)
            return moment.replace(microsecond=0) if "/ocsp/" in request.path else moment

    config = CertomancerConfig.from_file(args.config, key_search_dir=args.key_root,
                                         external_url_prefix=args.url_prefix)
    run_simple("127.0.0.1", args.port, WholeSecondOcspAnimator(AnimatorArchStore(config.pki_archs), with_web_ui=False))


if __name__ == "__main__":
    main()
