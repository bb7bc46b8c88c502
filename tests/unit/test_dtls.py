"""In-memory DTLS handshakes: what our DTLS context accepts, against aiortc's stock one."""

from __future__ import annotations

import pytest
from aiortc.rtcdtlstransport import SRTP_PROFILES, RTCCertificate, generate_certificate
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from OpenSSL import SSL

from media_server import openssl_groups
from media_server.dtls import InteropCertificate

KEYS = {
    "p256": lambda: ec.generate_private_key(ec.SECP256R1()),
    "p224": lambda: ec.generate_private_key(ec.SECP224R1()),  # FFmpeg 8 whip muxer
    "rsa": lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048),  # GStreamer
}


def context(kind: str, cls: type[RTCCertificate]) -> SSL.Context:
    key = KEYS[kind]()
    return cls(key=key, cert=generate_certificate(key))._create_ssl_context(SRTP_PROFILES)


def handshake(client_ctx: SSL.Context, server_ctx: SSL.Context) -> str:
    client, server = SSL.Connection(client_ctx), SSL.Connection(server_ctx)
    client.set_connect_state()
    server.set_accept_state()
    done = {"c": False, "s": False}
    for _ in range(20):
        for a, b, name in ((client, server, "c"), (server, client, "s")):
            if not done[name]:
                try:
                    a.do_handshake()
                    done[name] = True
                except SSL.WantReadError:
                    pass
                except SSL.Error as exc:
                    return f"fail: {exc}"
            try:
                while True:
                    b.bio_write(a.bio_read(65536))
            except SSL.Error:
                pass
        if all(done.values()):
            return "ok"
    return "fail: no completion"


def test_groups_hook_self_test_passed() -> None:
    assert openssl_groups.available(), openssl_groups.error()


@pytest.mark.parametrize("peer", ["p224", "rsa", "p256"])
def test_we_connect_as_dtls_client_to_any_peer(peer: str) -> None:
    # WHIP clients offer actpass/passive: aiortc answers active, i.e. it is the DTLS client.
    # The peer side uses our permissive context too, so the result isolates what WE accept.
    assert handshake(context("p256", InteropCertificate), context(peer, InteropCertificate)) \
        == "ok"


@pytest.mark.parametrize("peer", ["p224", "rsa"])
def test_stock_aiortc_fails_where_we_succeed(peer: str) -> None:
    # Proves the test above tests something: aiortc's own context rejects these peers.
    result = handshake(context("p256", RTCCertificate), context(peer, InteropCertificate))
    assert result.startswith("fail"), result


@pytest.mark.parametrize("peer", ["rsa", "p256"])
def test_we_accept_as_dtls_server(peer: str) -> None:
    assert handshake(context(peer, InteropCertificate), context("p256", InteropCertificate)) \
        == "ok"
