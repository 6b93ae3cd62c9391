"""`tryon-model`: the model lifecycle CLI for ML engineers.

    tryon-model data make DIR [--count 300 --height 64 --width 48 --seed 0]
    tryon-model data validate DIR [--format auto|tryon|vitonhd] [--json]
    tryon-model train --data DIR --model NAME [--epochs 20 ...]
    tryon-model evaluate --data DIR --model NAME --version N [--against production]
    tryon-model promote --data DIR --model NAME --version N|latest [--force --reason TEXT]
    tryon-model rollback --model NAME [--to N] [--reason TEXT]
    tryon-model history --model NAME

Exit codes: 0 success, 1 failure (bad data, registry or model errors), 2 usage errors,
3 promotion refused by the policy. Errors are one line on stderr starting with ``error:``;
TRYON_DEBUG=1 adds the traceback. Registry commands need MLFLOW_TRACKING_URI (or
--tracking-uri); artifacts on S3 use the usual MLFLOW_S3_ENDPOINT_URL / AWS_* variables.
"""

from .common import EXIT_FAILED, EXIT_OK, EXIT_REFUSED, EXIT_USAGE, CliError
from .main import main

__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_REFUSED", "EXIT_USAGE", "CliError", "main"]
