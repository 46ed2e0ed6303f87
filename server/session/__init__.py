"""Thin async shells around the room rules: connections, a room's local side on each worker, the
room's home, and the worker that owns them all. They decode, hand events to the rules, and run
the effects; no rule lives here."""
