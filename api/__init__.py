"""The HTTP API of kmop-docs: producers, applicants and the agency reach the service over HTTP.

``api.app.create_app`` builds the ASGI application (FastAPI), ``kmop api`` serves it with
uvicorn; ``api.routes`` holds the handlers, which call what the CLI and the workers call.
``api.callbacks`` puts webhook callbacks on jobs as the API enqueues them, ``api.webhooks`` is
the worker side that reports job outcomes (imported by ``workers.app``), ``api.client`` the
HTTP client behind ``kmop submit``, ``kmop status --api`` and ``kmop download``. The job message
format is documented in ``api/schemas/``. See README.md, "HTTP API".
"""
