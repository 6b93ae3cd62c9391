"""The real S3 server starts even when a port chosen for it is taken before it binds.

CI once lost a whole e2e run to `weed mini` dying with "Volume server listener error": a port
picked free was taken by the time seaweedfs bound it. These tests take a port on purpose.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import devservers

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


def test_free_ports_are_distinct_bindable_and_never_ephemeral() -> None:
    port_range = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    ephemeral_low = int(port_range[0])
    ports = devservers.free_ports(40)
    assert len(set(ports)) == 40
    assert max(ports) < ephemeral_low
    for port in ports[:5]:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


@pytest.fixture
def taken_socket() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    try:
        yield sock
    finally:
        sock.close()


def test_a_seaweedfs_start_that_loses_its_volume_port_is_retried_on_fresh_ports(
    tmp_path: Path, taken_socket: socket.socket, monkeypatch: pytest.MonkeyPatch
) -> None:
    taken = int(taken_socket.getsockname()[1])
    choose = devservers._weed_ports
    calls: list[dict[str, int]] = []

    def first_with_a_taken_volume_port(host: str) -> dict[str, int]:
        ports: dict[str, int] = choose(host)
        if not calls:
            ports["volume.port"] = taken
        calls.append(ports)
        return ports

    monkeypatch.setattr(devservers, "_weed_ports", first_with_a_taken_volume_port)
    server = devservers.start_s3_server(tmp_path)
    try:
        server.client().put_object(Bucket="readiness-probe", Key="after-retry", Body=b"ok")
        assert len(calls) == 2
        assert f"{taken}" in (tmp_path / "weed.log").read_text(errors="replace")
    finally:
        server.process.stop()
