"""Test certificates for 127.0.0.1, made with `cryptography`: a private CA and a server certificate
it issued, a self-signed server certificate (as `openssl req -x509` makes), and a stray key."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Certificates:
    ca: Path  # the CA's certificate: what clients trust
    cert: Path  # issued by the CA for 127.0.0.1 and localhost
    key: Path
    self_signed: Path  # for 127.0.0.1 and localhost, its own CA
    self_signed_key: Path
    stray_key: Path  # belongs to no certificate here


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return path


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    ca: bool,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()), critical=False
        )
    )
    if subject != "open-agentcore test CA":
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]
            ),
            critical=False,
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def issue(directory: Path) -> Certificates:
    """Write a CA, a server certificate it issued, a self-signed one and a stray key to `directory`."""
    ca_key, server_key, own_key = (ec.generate_private_key(ec.SECP256R1()) for _ in range(3))
    ca_name = "open-agentcore test CA"
    ca = _certificate(ca_name, ca_key, ca_name, ca_key, ca=True)
    server = _certificate("127.0.0.1", server_key, ca_name, ca_key, ca=False)
    own = _certificate("127.0.0.1", own_key, "127.0.0.1", own_key, ca=True)
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    (directory / "server.pem").write_bytes(server.public_bytes(pem))
    (directory / "self-signed.pem").write_bytes(own.public_bytes(pem))
    return Certificates(
        ca=directory / "ca.pem",
        cert=directory / "server.pem",
        key=_write_key(server_key, directory / "server.key"),
        self_signed=directory / "self-signed.pem",
        self_signed_key=_write_key(own_key, directory / "self-signed.key"),
        stray_key=_write_key(ec.generate_private_key(ec.SECP256R1()), directory / "stray.key"),
    )
