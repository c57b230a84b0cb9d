"""Entry module for ``dramatiq workers.app``: the broker from the settings, and the actors."""

from kmop.observability import configure_logging
from kmop.settings import load_settings

from .broker import install_broker
from .scheduling import BatchScheduling
from .warm_start import WarmRuntime

configure_logging()
broker = install_broker()
broker.add_middleware(BatchScheduling(load_settings().worker_scheduling == "batch"))
broker.add_middleware(WarmRuntime())

from . import actors  # noqa: E402,F401  (declares the actors on the broker above)
# The HTTP API's job-outcome callbacks (webhooks): every worker must know them, because a job
# enqueued with a webhook names them in its on_success/on_failure options.
from api import webhooks  # noqa: E402,F401
