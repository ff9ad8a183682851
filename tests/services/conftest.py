from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from septum.services.keys import generate_keypair


@pytest.fixture
def audit_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def key_files(tmp_path: Path) -> tuple[Path, Path]:
    priv, pub = tmp_path / "signing.pem", tmp_path / "signing.pub"
    generate_keypair(priv, pub)
    return priv, pub
