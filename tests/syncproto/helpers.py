"""Keys, times and strategies shared by the syncproto tests (real Ed25519 keys, no mocks)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta, timezone

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import strategies as st


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def key_from_seed(seed: bytes) -> tuple[str, str]:
    """A fixed key pair, for test vectors (Ed25519 signatures are deterministic)."""
    key = Ed25519PrivateKey.from_private_bytes(seed)
    return b64(seed), b64(key.public_key().public_bytes_raw())


# Two server keys, as during a key rotation, and a stranger's. Fixed seeds: parametrized
# test ids contain tokens, and pytest-xdist workers must collect the same ids.
PRIV1, PUB1 = key_from_seed(bytes(range(32)))
PRIV2, PUB2 = key_from_seed(bytes(range(1, 33)))
PRIV_X, PUB_X = key_from_seed(bytes(range(2, 34)))
TRUSTED = {"k1": PUB1}

CST = timezone(timedelta(hours=8))  # the cabinets' local zone, UTC+8
T0 = datetime(2025, 6, 1, 8, 30, tzinfo=CST)
T0_UTC = T0.astimezone(UTC)

_CJK = "中文读者证号图书馆深圳福田区张三李四王五借阅"
_ASTRAL = st.characters(min_codepoint=0x20000, max_codepoint=0x2A6DF)  # 4 bytes in UTF-8


def ids(max_size: int) -> st.SearchStrategy[str]:
    """Ids within the model limits: any text, Chinese, and the longest in bytes."""
    return st.one_of(
        st.text(min_size=1, max_size=max_size),
        st.text(alphabet=_CJK, min_size=1, max_size=max_size),
        st.text(alphabet=_ASTRAL, min_size=max_size, max_size=max_size),
    )


times = st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1),
                     timezones=st.sampled_from([UTC, CST, timezone(timedelta(hours=-5))]))
