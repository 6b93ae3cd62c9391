"""The CLI without servers: exit codes, messages and the progress line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from tryon_model.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from tryon_model.progress import Progress

pytestmark = pytest.mark.unit


def test_make_then_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "d"
    assert main(["data", "make", str(out), "--count", "10", "--height", "32", "--width", "24"]) == 0
    assert "wrote 10 samples (train 8, val 1, test 1)" in capsys.readouterr().out
    assert main(["data", "validate", str(out)]) == EXIT_OK
    assert "OK" in capsys.readouterr().out
    assert main(["data", "validate", str(out), "--json"]) == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["dataset_hash"].startswith("sha256:")


def test_validate_fails_and_names_the_file(tmp_path: Path, capsys) -> None:
    out = tmp_path / "d"
    main(["data", "make", str(out), "--count", "6", "--height", "32", "--width", "24"])
    (out / "train" / "garment" / "000002.png").unlink()
    capsys.readouterr()
    assert main(["data", "validate", str(out)]) == EXIT_FAILED
    text = capsys.readouterr().out
    assert "missing_file" in text and "train/garment/000002.png" in text


def test_errors_are_one_line_with_nonzero_exit(tmp_path: Path, capsys, monkeypatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert main(["data", "validate", str(tmp_path / "nope")]) == EXIT_FAILED
    assert capsys.readouterr().err.startswith("error: ")
    out = tmp_path / "d"
    main(["data", "make", str(out), "--count", "6", "--height", "32", "--width", "24"])
    assert main(["data", "make", str(out), "--count", "6"]) == EXIT_FAILED
    assert "--overwrite" in capsys.readouterr().err
    assert main(["train", "--data", str(out)]) == EXIT_FAILED
    assert "MLFLOW_TRACKING_URI" in capsys.readouterr().err
    args = ["promote", "--data", str(out), "--version", "2", "--force"]
    assert main(args) == EXIT_USAGE
    assert "--reason" in capsys.readouterr().err
    assert main(["data", "make", str(tmp_path / "e"), "--height", "8"]) == EXIT_USAGE


def test_usage_errors_exit_2() -> None:
    with pytest.raises(SystemExit) as exc:
        main(["train"])  # --data is required
    assert exc.value.code == EXIT_USAGE
    with pytest.raises(SystemExit) as exc:
        main(["data", "make", "x", "--split", "0.5,0.5"])
    assert exc.value.code == EXIT_USAGE


def test_progress_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TRYON_PROGRESS")
    stream = io.StringIO()
    bar = Progress(4, "work", stream=stream, enabled=True, min_interval_s=0)
    for _ in range(4):
        bar.update(postfix="loss 0.1")
    bar.close()
    lines = stream.getvalue().splitlines()
    assert lines[-1].startswith("work [####################] 4/4")
    assert "loss 0.1" in lines[-1]
    assert len(lines) == 4  # not a TTY: plain lines, no duplicate final line
    half = Progress(10, "x", stream=io.StringIO())
    half.count = 5
    assert "5/10" in half.render() and "eta" in half.render()
    monkeypatch.setenv("TRYON_PROGRESS", "0")
    silent = io.StringIO()
    with Progress(3, "quiet", stream=silent, enabled=True) as bar:
        bar.update(3)
    assert silent.getvalue() == ""
