"""The local Flink cluster's TLS material and settings (no server): mutual TLS on REST
and internally, stores for Flink, PEMs for kappa_orch's clients, each its owner's alone."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from kappa_orch.stack.config import StackConfig
from kappa_orch.stack.flink_security import flink_tls


@pytest.mark.slow
def test_the_stack_makes_its_certificate_once_and_flink_asks_every_client_for_it(tmp_path: Path) -> None:
    config = StackConfig(home=tmp_path)
    tls = flink_tls(config, account=None)
    assert (tls.ca, tls.client) == (config.flink_tls_ca, config.flink_tls_cert)
    for path in (tls.keystore, tls.truststore, tls.ca, tls.client):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for folder in (tls.keystore.parent, tls.client.parent):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    # the client's key belongs to the certificate the server presents, for 127.0.0.1
    cert = x509.load_pem_x509_certificate(tls.ca.read_bytes())
    key = load_pem_private_key(tls.client.read_bytes(), password=None)
    assert cert.public_key().public_numbers() == key.public_key().public_numbers()  # type: ignore[union-attr]
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["127.0.0.1"]
    # made once: a second start keeps it (clients already hold it)
    assert flink_tls(config, account=None).ca.read_bytes() == tls.ca.read_bytes()
    settings = tls.settings()
    assert settings["security.ssl.rest.enabled"] and settings["security.ssl.internal.enabled"]
    assert settings["security.ssl.rest.authentication-enabled"] is True
    assert settings["security.ssl.rest.keystore"] == str(tls.keystore)
    assert settings["security.ssl.internal.truststore-password"] == tls.password
    assert tls.password not in tls.ca.read_text() and len(tls.password) >= 24
