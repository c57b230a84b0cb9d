"""The HTTP API of kmop-docs: producers, applicants and the agency reach the service over HTTP.

``api.app.create_app`` builds the ASGI application (FastAPI), ``kmop api`` serves it with
uvicorn. ``api.webhooks`` holds the worker-side actors that report job outcomes to webhooks;
``api.client`` is the HTTP client behind ``kmop submit``, ``kmop status --api`` and
``kmop download``. See README.md, "HTTP API".
"""
