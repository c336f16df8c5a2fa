"""Uploaded metadata files: read as UTF-8 text, refused with a message when they are not."""

from __future__ import annotations

from werkzeug.datastructures import FileStorage

from broker.saml.metadata_check import MAX_METADATA_BYTES, NOT_UTF8, TOO_LARGE, MetadataInvalid


def uploaded_text(upload: object) -> str | None:
    """The upload's text, None when nothing was uploaded."""
    if not isinstance(upload, FileStorage) or not upload.filename:
        return None
    raw = upload.stream.read(MAX_METADATA_BYTES + 1)
    if len(raw) > MAX_METADATA_BYTES:
        raise MetadataInvalid(TOO_LARGE)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise MetadataInvalid(NOT_UTF8) from None
