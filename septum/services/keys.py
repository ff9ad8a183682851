"""The Ed25519 key files, kept importable here for the services; they live in ``septum.crypto.keys``."""

from septum.crypto.keys import (
    KeyFileError,
    generate_keypair,
    key_id,
    load_private_key,
    load_public_key,
    parse_private_key,
    private_pem,
)

__all__ = ["KeyFileError", "generate_keypair", "key_id", "load_private_key", "load_public_key",
           "parse_private_key", "private_pem"]
