"""The only package that performs a reconcile's I/O. See ``reconciler.py`` for the order of
steps; each step is a module here, and the decisions they carry out are pure (``decision.py``,
``heal.plan``, ``requests.outcomes``, ``status.wanted_conditions``)."""

from .reconciler import Reconciler as Reconciler
from .reconciler import ReconcileResult as ReconcileResult
