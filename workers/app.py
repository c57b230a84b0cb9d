"""Entry module for ``dramatiq workers.app``: the broker from the settings, and the actors."""

from .broker import install_broker

broker = install_broker()

from . import actors  # noqa: E402,F401  (declares the actors on the broker above)
