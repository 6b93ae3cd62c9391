"""Lease leader election: the elector, its lease rules, callbacks, a CLI."""
