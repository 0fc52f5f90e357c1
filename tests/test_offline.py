"""Generation of every kind with network connections forbidden: Studio must never try one."""

import socket

from helpers import EventLog

from studio.core.requests import ImageRequest, MusicRequest, TextRequest


def test_each_kind_generates_with_sockets_forbidden(services, tiny_lm, tiny_sd, tiny_musicgen, monkeypatch):
    attempts = []

    def refuse(sock, address, *args, **kwargs):
        attempts.append((sock.family, address))
        raise OSError("network access is forbidden in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    log = EventLog(services.worker)
    requests = [
        TextRequest(prompt="hello", model=str(tiny_lm), max_tokens=4),
        ImageRequest(prompt="a fox", model=str(tiny_sd), width=32, height=32, steps=2),
        MusicRequest(prompt="calm", model=str(tiny_musicgen), duration=0.3),
    ]
    for request in requests:
        end = log.wait_end(services.worker.submit(request), timeout=120)
        assert end.kind.value == "finished", f"{request.kind}: {end.error}"
    assert attempts == [], f"connection attempts: {attempts}"
