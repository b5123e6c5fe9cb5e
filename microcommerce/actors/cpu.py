"""A small process-wide pool for CPU-heavy work (password hashing).

bcrypt releases the GIL, so two threads use both cores; callers await it from an event loop
instead of hashing inside a worker whose mailbox others wait on. Under the deterministic
runner (one thread, virtual time) the work runs inline instead: no thread may run beside it.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from microcommerce import environment

T = TypeVar("T")

CPU_POOL = ThreadPoolExecutor(max_workers=2, thread_name_prefix="cpu")


async def run_cpu(fn: Callable[..., T], *args: object) -> T:
    if environment.is_deterministic():
        return fn(*args)
    # In the caller's context, so the work draws from the caller's environment (bcrypt salts).
    context = contextvars.copy_context()
    return await asyncio.get_running_loop().run_in_executor(CPU_POOL, context.run, fn, *args)
