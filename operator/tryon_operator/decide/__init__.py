"""Pure rollout decisions: plain facts in, an action out; no I/O anywhere here."""
