from collections.abc import Sequence

INT8: int
BOOL: int
TIMESTAMP: int
DATE: int
TIME: int
TEXT: int
JSONB: int
NUMERIC: int
FLOAT8: int
TIMETZ: int

class Unsupported(ValueError): ...

def encode_rows(n: int, columns: Sequence[tuple[int, object, object, object, int]], /) -> bytes: ...
