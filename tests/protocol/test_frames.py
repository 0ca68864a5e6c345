"""The reference frame codec's masking (RFC 6455 5.3), against a byte-by-byte XOR."""

from __future__ import annotations

import random

import pytest

from rapidws.protocol.frames import apply_mask


def reference(data: bytes, mask: bytes) -> bytes:
    return bytes(b ^ mask[i % 4] for i, b in enumerate(data))


@pytest.mark.parametrize("size", [0, 1, 3, 4, 5, 2047, 2048, 2049, 4099, 100_003])
@pytest.mark.parametrize("kind", [bytes, bytearray, memoryview])
def test_apply_mask_matches_byte_by_byte_xor(size: int, kind: type) -> None:
    rng = random.Random(size)
    data = rng.randbytes(size)
    mask = rng.randbytes(4)
    masked = apply_mask(kind(data), mask)
    assert type(masked) is bytes
    assert masked == reference(data, mask)
    assert apply_mask(masked, mask) == data
