"""API keys: `dk_<id>_<secret>`, looked up by id, stored only as a hash."""

from __future__ import annotations

import hashlib
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.domain.apikey import ApiKeyRecord, format_key, hash_key, key_id_of
from tests.domain.samples import T0

# What `secrets.token_urlsafe` and friends produce; ids are ours and never contain "_".
URLSAFE = string.ascii_letters + string.digits + "-_"
ID_CHARS = string.ascii_lowercase + string.digits


def test_format_key_shape() -> None:
    assert format_key("k1a2", "s3cr3t") == "dk_k1a2_s3cr3t"


def test_key_id_of_reads_the_id_back() -> None:
    assert key_id_of("dk_k1a2_s3cr3t") == "k1a2"


@settings(max_examples=200, database=None)
@given(
    key_id=st.text(ID_CHARS, min_size=1, max_size=16),
    secret=st.text(URLSAFE, min_size=1, max_size=64),
)
def test_every_formatted_key_yields_its_id(key_id: str, secret: str) -> None:
    assert key_id_of(format_key(key_id, secret)) == key_id


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "dk",
        "dk_",
        "dk__secret",
        "dk_id_",
        "dk_id",
        "xx_id_secret",
        "DK_id_secret",
        "id_secret",
        "Bearer dk_id_secret",
    ],
)
def test_key_id_of_rejects_keys_not_shaped_like_ours(presented: str) -> None:
    assert key_id_of(presented) is None


def test_hash_key_is_the_sha256_hex_of_the_key() -> None:
    # FIPS 180-2 test vector, so the stored form cannot drift silently.
    assert hash_key("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    key = format_key("k1a2", "s3cr3t")
    assert hash_key(key) == hashlib.sha256(key.encode()).hexdigest()


def test_hashes_differ_per_key_and_never_contain_the_secret() -> None:
    first, second = hash_key("dk_a_secret1"), hash_key("dk_a_secret2")
    assert first != second
    assert "secret" not in first
    assert len(first) == 64


def test_a_record_is_active_until_revoked_and_never_holds_the_key() -> None:
    record = ApiKeyRecord(id="k1a2", name="tablet 3", key_hash=hash_key("dk_k1a2_x"), created_at=T0)
    assert record.is_active
    revoked = ApiKeyRecord(
        id="k1a2", name="tablet 3", key_hash=record.key_hash, created_at=T0, revoked_at=T0
    )
    assert not revoked.is_active
    assert "dk_k1a2_x" not in repr(record)
