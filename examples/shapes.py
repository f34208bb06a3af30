"""Types for `tether generate --type examples.shapes:Point` (run from the repository root)."""

from typing import Annotated

import msgspec


class Point(msgspec.Struct):
    x: Annotated[int, msgspec.Meta(ge=-100, le=100)]
    y: Annotated[int, msgspec.Meta(ge=-100, le=100)]
    label: Annotated[str, msgspec.Meta(max_length=12)]
