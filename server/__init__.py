"""cocoach: a self-hostable real-time co-coaching session server."""

__version__ = "0.1.0"
