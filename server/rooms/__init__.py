"""The room's rules: a pure state machine fed events, returning effects.

Nothing in this package may import asyncio, redis or aiortc (tests/test_rooms_pure.py checks),
so every rule can be tested table-driven without an event loop.
"""
