"""moto's S3 application served by waitress, a WSGI server that keeps HTTP/1.1 connections open.

``python -m moto.server`` serves through werkzeug's development server, which answers every
request with ``Connection: close``: each S3 request then paid a new TCP connection and a new
server thread on both sides, which no S3 service in production asks of its clients. The
application (moto's S3 backend, its ``/moto-api`` dashboard) is the same.

    python tests/moto_http.py HOST PORT
"""

from __future__ import annotations

import os
import sys

import waitress
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app


def main(argv: list[str]) -> None:
    host, port = argv[0], int(argv[1])
    os.environ.setdefault("MOTO_PORT", str(port))  # as moto.server sets it: the port it advertises
    waitress.serve(DomainDispatcherApplication(create_backend_app), host=host, port=port, threads=4,
                   ident="moto", _quiet=True)


if __name__ == "__main__":
    main(sys.argv[1:])
