"""An async before_send that never finishes in time (it would change the text if it did)."""

import asyncio
from typing import Any

from unith_shell import hookimpl


@hookimpl
async def before_send(message: Any) -> None:
    message.text = "CHANGED BY HANGING_HOOK"
    await asyncio.sleep(3600)
