"""The edge of a worker: what every request passes before a route sees it (client address,
request id, Origin, CORS, security headers, rate limits). Pure parts apart from the ASGI shell."""
