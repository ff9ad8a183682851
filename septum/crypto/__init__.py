"""The device's cryptography that both the runtime and the services rely on: Ed25519 key files, the update
manifest and the check of its signature.

The supervisor (runtime) checks code signatures itself instead of trusting the update partition, and the
update service (services) checks bundles: both import this package, which imports neither of them.
"""
