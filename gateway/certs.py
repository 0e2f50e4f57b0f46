"""Development PKI for the gateway's mTLS listener: a CA, a server certificate and a client certificate.

``python -m gateway.certs <dir>`` (``make certs``) writes them once; existing files are kept, so clients that
hold a certificate keep working across runs.
"""

from __future__ import annotations

import dataclasses
import datetime
import ipaddress
import pathlib
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CLIENT_SPIFFE_PREFIX = "spiffe://tastyplat/"
_VALIDITY = datetime.timedelta(days=825)


@dataclasses.dataclass(frozen=True)
class Pki:
    """Paths of the development PKI files."""

    directory: pathlib.Path

    @property
    def ca_cert(self) -> pathlib.Path:
        return self.directory / "ca.crt"

    @property
    def ca_key(self) -> pathlib.Path:
        return self.directory / "ca.key"

    @property
    def server_cert(self) -> pathlib.Path:
        return self.directory / "server.crt"

    @property
    def server_key(self) -> pathlib.Path:
        return self.directory / "server.key"

    @property
    def client_cert(self) -> pathlib.Path:
        return self.directory / "client.crt"

    @property
    def client_key(self) -> pathlib.Path:
        return self.directory / "client.key"


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: pathlib.Path, key: ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    path.chmod(0o600)


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Tastytrade Enhancement Platform (development)"),
         x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )


def create_ca(common_name: str = "tastyplat development CA") -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed EC P-256 certificate authority."""
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(_name(common_name))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert, key


def issue(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    common_name: str,
    *,
    server: bool,
    sans: list[x509.GeneralName],
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A leaf certificate for a server (serverAuth) or a client (clientAuth) signed by the CA."""
    key = _key()
    now = datetime.datetime.now(datetime.UTC)
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert, key


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def ensure_pki(directory: pathlib.Path, client_name: str = "developer") -> Pki:
    """Create the CA, the server certificate (localhost, 127.0.0.1, ::1) and one client certificate, unless
    they exist already; return their paths."""
    pki = Pki(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if pki.ca_cert.exists() and pki.ca_key.exists():
        ca_cert = x509.load_pem_x509_certificate(pki.ca_cert.read_bytes())
        ca_key = serialization.load_pem_private_key(pki.ca_key.read_bytes(), password=None)
        assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    else:
        ca_cert, ca_key = create_ca()
        _write_key(pki.ca_key, ca_key)
        pki.ca_cert.write_bytes(_pem(ca_cert))
        for stale in (pki.server_cert, pki.client_cert):
            stale.unlink(missing_ok=True)
    if not pki.server_cert.exists():
        sans: list[x509.GeneralName] = [
            x509.DNSName("localhost"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
        ]
        cert, key = issue(ca_cert, ca_key, "localhost", server=True, sans=sans)
        _write_key(pki.server_key, key)
        pki.server_cert.write_bytes(_pem(cert))
    if not pki.client_cert.exists():
        uri = x509.UniformResourceIdentifier(f"{CLIENT_SPIFFE_PREFIX}client/{client_name}")
        cert, key = issue(ca_cert, ca_key, client_name, server=False, sans=[uri])
        _write_key(pki.client_key, key)
        pki.client_cert.write_bytes(_pem(cert))
    return pki


if __name__ == "__main__":
    target = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else ".run/certs")
    made = ensure_pki(target)
    print(f"CA {made.ca_cert}\nserver {made.server_cert}\nclient {made.client_cert} (key {made.client_key})")
