"""The only package that performs a reconcile's I/O. See ``reconciler.py`` for the order of
steps; each concern is a module here, its pure part a ``plan(facts)`` that holds no ports
(``heal.plan``, ``requests.plan``, ``status.plan``), beside the rollout's ``decision.decide``."""

from .reconciler import Reconciler as Reconciler
from .reconciler import ReconcileResult as ReconcileResult
