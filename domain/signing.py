"""Signed commands: the HTTP door (or a trusted tool) signs what it forwards, the workflow checks.

A command is signed with Ed25519 over its canonical JSON (`domain.chain.canonical_json` of
the command as JSON, with `auth.signature` left out), the key named by `auth.key_id`. The
workflow verifies it against the public keys it trusts before deciding, so reaching
Temporal directly is no way around the door. Pure computation: keys are arguments.
"""

import base64
from collections.abc import Mapping
from typing import Any, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from domain.actors import CommandAuth, CommandBase
from domain.chain import canonical_json
from domain.errors import RuleViolation

C = TypeVar("C", bound=CommandBase)


def signing_bytes(command: CommandBase) -> bytes:
    """What a command's signature covers: its canonical JSON without the signature."""
    body: dict[str, Any] = command.model_dump(mode="json")
    if body.get("auth"):
        body["auth"] = {k: v for k, v in body["auth"].items() if k != "signature"}
    return canonical_json(body).encode("utf-8")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(command: C, key: Ed25519PrivateKey, *, key_id: str, issuer: str, subject: str, via: str) -> C:
    """`command` with its `auth`: who vouches for it, and the signature over the rest."""
    draft = command.model_copy(
        update={"auth": CommandAuth(key_id=key_id, signature="-", issuer=issuer, subject=subject, via=via)}
    )
    signature = _b64(key.sign(signing_bytes(draft)))
    return draft.model_copy(update={"auth": draft.auth.model_copy(update={"signature": signature})})  # type: ignore[union-attr]


def verify(command: CommandBase, trusted: Mapping[str, Ed25519PublicKey], *, allow_unsigned: bool) -> None:
    """Refuse a command that is unsigned (`auth.unsigned`, unless `allow_unsigned`), signed by
    a key not trusted (`auth.unknown_key`), or whose signature does not match (`auth.bad_signature`)."""
    auth = command.auth
    if auth is None:
        if allow_unsigned:
            return
        raise RuleViolation(
            "auth.unsigned",
            "The command is not signed: send it through the HTTP API, or sign it with a trusted key.",
        )
    key = trusted.get(auth.key_id)
    if key is None:
        raise RuleViolation(
            "auth.unknown_key",
            f"The command is signed with key {auth.key_id!r}, which this engine does not trust.",
        )
    try:
        key.verify(_unb64(auth.signature), signing_bytes(command))
    except (InvalidSignature, ValueError):
        raise RuleViolation(
            "auth.bad_signature",
            f"The command's signature does not match its content (key {auth.key_id}): it was changed "
            "after it was signed, or signed with another key.",
        ) from None


def new_key() -> Ed25519PrivateKey:
    """A new signing key."""
    return Ed25519PrivateKey.generate()


def private_pem(key: Ed25519PrivateKey) -> str:
    """A private key as PEM text (PKCS #8, unencrypted: keep the file readable by its owner only)."""
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode("ascii")


def public_pem(key: Ed25519PublicKey) -> str:
    """A public key as PEM text, for the trusted keys of workers."""
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode("ascii")


def load_private(pem: str) -> Ed25519PrivateKey:
    """An Ed25519 private key from PEM text (ValueError when it is not one)."""
    key = load_pem_private_key(pem.encode("ascii"), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return key


def load_public(pem: str) -> Ed25519PublicKey:
    """An Ed25519 public key from PEM text (ValueError when it is not one)."""
    key = load_pem_public_key(pem.encode("ascii"))
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key
