"""Settings: defaults, overridden by COCOACH_* environment variables, overridden by CLI flags.

Secrets come only from here (environment or files under the data directory), never from code.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

from server.errors import ConfigError

MIN_SECRET_BYTES = 32
BOOLEANS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False}
BOOLEANS |= {"no": False, "off": False, "": False}


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8000
    data: Path = Path("data")
    redis: str | None = None  # None: embedded mode (in-memory broker, SQLite store)
    # A document edit is acknowledged (relayed) only once this many Redis replicas have it
    # (WAIT), within redis_wait_ms; until then it is treated as with Redis away.
    redis_wait_replicas: int = 0
    redis_wait_ms: int = 1000
    worker_id: str | None = None  # None: a random id per process
    secret: str | None = None  # None: read or create <data>/secret
    admin_key: str | None = None  # None: read or create <data>/admin_key
    public_url: str | None = None  # where invite links point; None: http://host:port

    # Organisations and privacy (documented in docs/organisations.md).
    orgs: str = ""  # "trust: school, school; trust: school"; "": one implicit organisation
    default_org: str = "default"  # owns records made before organisations were configured
    clip_max_seconds: float = 600.0  # the longest clip (docs/groups.md)
    allow_download: bool = False  # GET /api/videos/{video}/download for owners and admins
    # Organisations whose rooms do not measure who talks when ("a, b"; "*": none measures).
    talk_unmeasured: str = ""

    # People and sign-in (documented in docs/people.md).
    oidc_issuer: str | None = None  # the school's identity provider; None: sign-in links only
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = None
    oidc_org_claim: str = ""  # an ID-token claim that names the person's school
    oidc_org_domains: str = ""  # "ashby.sch.uk: ashby-primary; brook.sch.uk: brook-academy"
    oidc_label: str = "your school account"  # what the sign-in button says
    # More providers (a Microsoft school and a Google school): a JSON list of {"name", "issuer",
    # "client_id", "client_secret", "label"?, "org_claim"?, "org_domains"?}.
    oidc_providers: str = ""
    sign_in_hours: float = 12.0  # how long a sign-in lasts
    login_link_minutes: float = 30.0  # how long a one-time sign-in link may wait to be used

    # Room protocol limits (documented in docs/protocol.md).
    max_frame_bytes: int = 64 * 1024
    rate_per_second: float = 30.0  # sustained client frames per second
    rate_burst: float = 60.0  # frames allowed at once
    flood_close_after: int = 100  # frames refused in a row before the connection is closed
    send_queue: int = 256  # frames queued to one client before it is dropped as slow
    home_inbox: int = 10_000  # intents queued at a room's home

    # Shared documents (Yjs) limits and upkeep (documented in docs/documents.md).
    yjs_max_frame_bytes: int = 1024 * 1024
    yjs_rate_per_second: float = 60.0
    yjs_rate_burst: float = 300.0
    doc_write_queue: int = 10_000  # accepted updates waiting for the log, per worker
    # The writer waits this long for more updates before each append: a third less CPU per
    # update on every worker and in Redis, for 1-2 ms of latency (docs/benchmarks.md).
    doc_write_linger_ms: float = 2.0
    doc_compact_after: int = 500  # log entries before a room's log is folded into a snapshot
    doc_idle_seconds: float = 30.0  # a document nobody here uses is unloaded after this
    # A room nobody here has written to for this long keeps its document as encoded bytes only
    # (a fraction of a live replica's memory); the next write rebuilds the replica.
    doc_hot_seconds: float = 15.0

    # Test switch only: the share of received pub/sub messages the Redis broker drops.
    test_drop_pubsub: float = 0.0

    # Multi-worker timings (seconds).
    heartbeat_interval: float = 0.5
    worker_timeout: float = 2.0  # no heartbeat for this long: the worker is gone
    lease_ttl: float = 2.5  # a home that stops renewing loses its rooms after this
    home_idle_seconds: float = 30.0  # a home with no members, peers or live lesson gives it up

    # Media: WHEP viewers and ICE (docs/media.md).
    media_host_addresses: str = ""  # comma-separated ICE host candidates; "": every interface
    media_remote_networks: str = "global,loopback"  # where a remote candidate may point
    ice_servers: str = ""  # comma-separated stun:/turn: URLs handed to clients
    turn_secret: str | None = None  # coturn's use-auth-secret, for TURN REST credentials
    turn_ttl: float = 86400.0  # seconds a TURN credential stays valid
    media_max_viewers: int = 200  # WHEP viewers one worker serves
    voice_max_cameras: int = 6  # cameras one room's conversation carries (docs/conversation.md)
    media_offer_max_bytes: int = 64 * 1024
    media_connect_timeout: float = 20.0  # a viewer not connected by then is closed
    media_rpc_timeout: float = 10.0  # a worker waits this long for the room's home to answer
    live_resume_seconds: float = 60.0  # a dropped publisher may come back this long (docs/live.md)

    # Video library: uploads and ingest (documented in docs/videos.md).
    library: Path | None = None  # the library directory (shared by every host); None: <data>/videos
    max_upload_bytes: int = 4 * 1024**3
    ingest_concurrency: int = 1  # transcodes at a time on one worker
    ingest_queue: int = 100  # videos waiting on one worker; more wait in the store for a sweep
    ingest_nice: int = 10  # the transcoder runs at a lower CPU priority than the rooms
    ingest_lease_seconds: float = 30.0  # a dead worker's ingest is taken over after this
    ingest_sweep_seconds: float = 30.0  # how often orphaned ingests and stale uploads are found
    upload_expiry_seconds: float = 24 * 3600.0  # an unfinished upload untouched this long goes
    demo_clip_seconds: float = 60.0  # the first run's demo lesson; 0: none

    # Web security and edge limits (documented in docs/operations.md and docs/deploy.md).
    allowed_origins: str = ""  # comma-separated origins allowed beyond the page's own (WS, CORS)
    trusted_proxies: str = ""  # comma-separated addresses/networks whose X-Forwarded-For we believe
    hsts_seconds: int = 0  # Strict-Transport-Security max-age; set only when TLS ends in front
    auth_failures_per_minute: float = 10.0  # failed authentications refilled per address
    auth_failure_burst: float = 20.0  # failed authentications an address may make at once
    uploads_per_minute: float = 10.0  # upload creations refilled per address
    upload_burst: float = 20.0  # upload creations an address may make at once
    max_concurrent_uploads: int = 8  # upload requests (POST /api/videos, tus PATCH) per worker
    rate_limit_addresses: int = 10_000  # client addresses each limiter remembers (oldest go)

    # Operations (documented in docs/operations.md).
    metrics_token: str | None = None  # when set, /metrics needs it as Authorization: Bearer
    log_format: str = "text"  # "text" or "json" (one JSON object per line)
    drain_seconds: float = 5.0  # on SIGTERM: time clients and writes get before the exit
    # "auto" runs on uvloop where it is installed (a dependency on Linux and macOS): about a
    # third less CPU per document update than asyncio's own loop (docs/benchmarks.md).
    event_loop: str = "auto"  # "auto", "uvloop" or "asyncio"

    # Consent and retention of videos (docs/videos.md#consent-and-retention).
    video_retention_days: int = 365  # a video with no period of its own goes after this; 0: kept
    retention_interval_seconds: float = 3600.0  # how often expired videos are looked for

    # Audit log (docs/audit.md).
    audit_queue: int = 10_000  # events waiting for the log on one worker; more are dropped
    audit_max_events: int = 1_000_000  # Redis keeps the newest this many (SQLite keeps all)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        for field in fields(cls):
            raw = env.get(f"COCOACH_{field.name.upper()}")
            if raw is None:
                continue
            values[field.name] = _parse(field.type, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def with_secrets(self) -> Settings:
        """Fill `secret` and `admin_key` from <data>, creating them on first run."""
        secret = self.secret or _read_or_create(self.data / "secret")
        admin_key = self.admin_key or _read_or_create(self.data / "admin_key")
        # HS256 with a short key can be brute-forced offline from any token a user holds.
        if len(secret.encode()) < MIN_SECRET_BYTES:
            raise ConfigError(f"COCOACH_SECRET must be at least {MIN_SECRET_BYTES} bytes")
        if len(admin_key.encode()) < 12:
            raise ConfigError("COCOACH_ADMIN_KEY must be at least 12 characters")
        return replace(self, secret=secret, admin_key=admin_key)

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"


def _parse(kind: Any, raw: str) -> Any:
    text = str(kind)
    if text.startswith("bool"):
        if raw.strip().lower() not in BOOLEANS:
            raise ConfigError(f"{raw[:20]!r} is not one of {sorted(BOOLEANS)}")
        return BOOLEANS[raw.strip().lower()]
    if "Path" in text:
        return Path(raw)
    if text.startswith("int"):
        return int(raw)
    if text.startswith("float"):
        return float(raw)
    return raw


def _read_or_create(path: Path) -> str:
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    # O_EXCL: two processes starting at once on a fresh data dir must agree on one secret.
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    return value
