"""The server's TLS certificate and key: checked before serving, so a bad pair fails in one line."""

from __future__ import annotations

import ssl
from pathlib import Path


class TlsError(Exception):
    """The certificate or key cannot be served; the message names the file and the reason."""


class _Encrypted(Exception):
    pass


def _no_password() -> bytes:
    # OpenSSL would otherwise prompt on the terminal for the key's passphrase.
    raise _Encrypted


def check_tls_files(cert: Path, key: Path) -> None:
    """Raise `TlsError` unless `cert` and `key` are readable PEM files of one key pair."""
    texts = {}
    for what, path in (("certificate", cert), ("key", key)):
        try:
            texts[what] = path.read_text(errors="replace")
        except FileNotFoundError:
            raise TlsError(f"the TLS {what} file {path} does not exist") from None
        except OSError as error:
            raise TlsError(f"cannot read the TLS {what} file {path}: {error.strerror or error}") from None
    leaf_certificate(cert)
    if "PRIVATE KEY-----" not in texts["key"]:
        raise TlsError(f"the TLS key file {key} holds no PEM private key")
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, password=_no_password)
    except _Encrypted:
        raise TlsError(f"the TLS key {key} is encrypted: give the server an unencrypted key") from None
    except ssl.SSLError as error:
        if "KEY_VALUES_MISMATCH" in str(error):
            raise TlsError(f"the TLS key {key} does not match the certificate {cert}") from None
        raise TlsError(
            f"cannot load the TLS certificate {cert} with the key {key}: {error.reason or error}"
        ) from None


def leaf_certificate(cert: Path) -> str:
    """The first certificate in a PEM file (the server's own; a chain may follow it)."""
    text = cert.read_text(errors="replace")
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    start = text.find(begin)
    stop = text.find(end, start)
    if start < 0 or stop < 0:
        raise TlsError(f"the TLS certificate file {cert} holds no PEM certificate")
    return text[start : stop + len(end)] + "\n"


def is_self_signed(cert: Path) -> bool:
    """Whether the server's certificate signed itself (then clients trust that file as their CA)."""
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature

    certificate = x509.load_pem_x509_certificate(leaf_certificate(cert).encode())
    if certificate.issuer != certificate.subject:
        return False
    try:
        certificate.verify_directly_issued_by(certificate)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


__all__ = ["TlsError", "check_tls_files", "is_self_signed", "leaf_certificate"]
