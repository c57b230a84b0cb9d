"""moto's S3 application served by waitress, a WSGI server that keeps HTTP/1.1 connections open.

``python -m moto.server`` serves through werkzeug's development server, which answers every
request with ``Connection: close``: each S3 request then paid a new TCP connection and a new
server thread on both sides, which no S3 service in production asks of its clients.

Every request but moto's ``/moto-api`` dashboard goes straight to moto's S3 application: moto's
dispatcher otherwise works out, per request, which of its hundreds of AWS services is meant
(the signature's credential scope, a scan of its service packages on disk, then the services'
host patterns), which cost more of the server's CPU than the S3 request itself (a job's two
PUTs and a listing: about 10 -> 6 ms). The S3 application and its answers are the same.

    python testing/moto_http.py HOST PORT
"""

from __future__ import annotations

import os
import sys
from typing import Any

import waitress
from flask import Flask
from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

DASHBOARD_PATH = "/moto-api"


class S3Dispatcher(DomainDispatcherApplication):
    """moto's dispatcher with the answer for S3 known in advance."""

    def get_application(self, environ: dict[str, Any]) -> Flask:
        if environ.get("PATH_INFO", "").startswith(DASHBOARD_PATH):
            return super().get_application(environ)
        with self.lock:
            app = self.app_instances.get("s3")
            if app is None:
                app = self.app_instances["s3"] = self.create_app("s3")
        return app


def main(argv: list[str]) -> None:
    host, port = argv[0], int(argv[1])
    os.environ.setdefault("MOTO_PORT", str(port))  # as moto.server sets it: the port it advertises
    waitress.serve(S3Dispatcher(create_backend_app), host=host, port=port, threads=4,
                   ident="moto", _quiet=True)


if __name__ == "__main__":
    main(sys.argv[1:])
