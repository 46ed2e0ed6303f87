"""The multi-worker layer: Broker (publish/subscribe), Store (durable state), Lease (room home).

Each is a `typing.Protocol` with an embedded implementation (one process, no Redis) and a Redis
one; tests/test_sync_contract.py runs one contract suite against both. Redis is touched nowhere
else in the code base.
"""
