"""Signed upload grants: the ``signed_id`` of RunAPI's prepare, PUT, confirm upload flow.

``POST /api/v1/files/prepare`` hands out a grant naming the account, the file id to be,
and the exact bytes promised (size and MD5). The grant is the only credential of the PUT
(RunAPI's SDKs send no API key there), so it is signed with the URL-signing key and expires;
nothing is stored until the bytes arrive. Single use comes from the file id: the PUT holds
the file under that id, and a second PUT of the same grant meets the row already there.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import asdict, dataclass

from imagegate.storage.signing import UrlSigner

_SCOPE = "upload-grant:"  # kept apart from download keys, which never start with it


@dataclass(frozen=True)
class UploadGrant:
    account_id: str
    file_id: str
    file_name: str
    byte_size: int
    checksum: str  # base64 of the MD5 digest, as the client computed it
    content_type: str | None
    expires: int  # unix seconds


def issue(signer: UrlSigner, grant: UploadGrant) -> str:
    payload = base64.urlsafe_b64encode(json.dumps(asdict(grant), separators=(",", ":")).encode())
    body = payload.decode().rstrip("=")
    return f"{body}.{signer.signature(_SCOPE + body, grant.expires)}"


def read(signer: UrlSigner, token: str) -> UploadGrant | None:
    """The grant ``token`` carries if we signed it (expired or not), else None."""
    body, _, sig = token.partition(".")
    if not body or not sig:
        return None
    try:
        fields = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        grant = UploadGrant(**fields)
    except (binascii.Error, ValueError, TypeError):
        return None
    if not isinstance(grant.expires, int) or not signer.verify(_SCOPE + body, grant.expires, sig):
        return None
    return grant
