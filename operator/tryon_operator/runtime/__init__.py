"""Running the operator: kopf handlers, wiring, the work queue, wake-ups, leadership."""
