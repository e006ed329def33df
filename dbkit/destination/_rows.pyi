from collections.abc import Sequence
from typing import Any

def decode(
    datas: Sequence[Any], names: Sequence[bytes], kinds: bytes, /
) -> list[tuple[int, bytes | None, bytes, bytes | None]] | None: ...
def tokens(validity: object, offsets: object, data: object, offset: int, length: int, /) -> bool: ...
