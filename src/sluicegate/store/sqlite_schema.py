"""The SQLite file's schema: a plain ordered list of migrations, each a tuple of statements run
in one transaction; `PRAGMA user_version` records how many have run (store/sqlite.py)."""

from __future__ import annotations

MIGRATIONS: list[tuple[str, ...]] = [
    (
        """
        CREATE TABLE api_keys (
            id          TEXT PRIMARY KEY,
            name        TEXT NOT NULL,
            key_hash    TEXT NOT NULL UNIQUE,
            key_hint    TEXT NOT NULL,
            created_at  REAL NOT NULL,
            revoked_at  REAL
        )
        """,
    ),
    (  # the Responses door's kept responses (store: true); see store/responses.py
        """
        CREATE TABLE IF NOT EXISTS responses (
            id                    TEXT PRIMARY KEY,
            key_id                TEXT NOT NULL,
            created_at            REAL NOT NULL,
            previous_response_id  TEXT,
            input_items           BLOB NOT NULL,
            response              BLOB NOT NULL
        )
        """,
    ),
    (
        "ALTER TABLE api_keys ADD COLUMN expires_at REAL",
        "ALTER TABLE api_keys ADD COLUMN budget_nanos INTEGER",
        "ALTER TABLE api_keys ADD COLUMN spent_nanos INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE api_keys ADD COLUMN reserved_nanos INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE api_keys ADD COLUMN rpm INTEGER",
        "ALTER TABLE api_keys ADD COLUMN tpm INTEGER",
        "ALTER TABLE api_keys ADD COLUMN models TEXT",
        "ALTER TABLE api_keys ADD COLUMN is_admin INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE api_keys ADD COLUMN updated_at REAL NOT NULL DEFAULT 0",
        """
        CREATE TABLE reservations (
            id            TEXT PRIMARY KEY,
            key_id        TEXT NOT NULL,
            amount_nanos  INTEGER NOT NULL,
            created_at    REAL NOT NULL
        )
        """,
        "CREATE INDEX reservations_created ON reservations (created_at)",
        """
        CREATE TABLE ledger (
            id                     INTEGER PRIMARY KEY,
            request_id             TEXT NOT NULL,
            created_at             REAL NOT NULL,
            day                    TEXT NOT NULL,
            key_id                 TEXT,
            door                   TEXT NOT NULL,
            model                  TEXT NOT NULL,
            provider               TEXT NOT NULL,
            served_by              TEXT NOT NULL,
            upstream_model         TEXT NOT NULL,
            deployment             TEXT NOT NULL,
            stream                 INTEGER NOT NULL,
            status                 INTEGER NOT NULL,
            error_type             TEXT,
            error_code             TEXT,
            finish_reason          TEXT,
            prompt_tokens          INTEGER NOT NULL,
            completion_tokens      INTEGER NOT NULL,
            cached_tokens          INTEGER NOT NULL,
            cache_creation_tokens  INTEGER NOT NULL,
            reasoning_tokens       INTEGER NOT NULL,
            usage_source           TEXT NOT NULL,
            cost_nanos             INTEGER NOT NULL,
            ttft_ms                REAL,
            total_ms               REAL,
            client_gone            INTEGER NOT NULL
        )
        """,
        "CREATE INDEX ledger_created ON ledger (created_at)",
        "CREATE INDEX ledger_key ON ledger (key_id, id)",
        """
        CREATE TABLE usage_daily (
            day                TEXT NOT NULL,
            key_id             TEXT NOT NULL,
            model              TEXT NOT NULL,
            requests           INTEGER NOT NULL,
            errors             INTEGER NOT NULL,
            prompt_tokens      INTEGER NOT NULL,
            completion_tokens  INTEGER NOT NULL,
            cached_tokens      INTEGER NOT NULL,
            reasoning_tokens   INTEGER NOT NULL,
            cost_nanos         INTEGER NOT NULL,
            PRIMARY KEY (day, key_id, model)
        )
        """,
        "CREATE INDEX usage_daily_key ON usage_daily (key_id, day)",
    ),
    # the usage page's recent requests of one model: without it, a model last used long ago
    # means reading the ledger back to its rows (0.2 s at a million rows)
    ("CREATE INDEX ledger_model ON ledger (model, id)",),
    # no query reads the ledger by time (the usage sums come from usage_daily, the recent
    # requests by id): the index only cost every ledger write
    ("DROP INDEX IF EXISTS ledger_created",),
    # durable admission (governance/durable.py): the gateway processes with their heartbeats,
    # whose reservations each is, and an open row per admitted request until its record is written
    (
        """
        CREATE TABLE instances (
            id            TEXT PRIMARY KEY,
            host          TEXT NOT NULL,
            pid           INTEGER NOT NULL,
            pid_start     TEXT NOT NULL,
            started_at    REAL NOT NULL,
            heartbeat_at  REAL NOT NULL
        )
        """,
        "ALTER TABLE reservations ADD COLUMN instance_id TEXT",
        "CREATE INDEX reservations_instance ON reservations (instance_id)",
        """
        CREATE TABLE ledger_open (
            id           TEXT PRIMARY KEY,
            instance_id  TEXT NOT NULL,
            created_at   REAL NOT NULL,
            record       BLOB NOT NULL
        )
        """,
        "CREATE INDEX ledger_open_instance ON ledger_open (instance_id)",
    ),
    # the in-flight journal's reapers skip requests the ledger already holds (governance/journal.py)
    ("CREATE INDEX ledger_request ON ledger (request_id)",),
    # mid-stream fail-over: the deployments that wrote one answer, each with its tokens and
    # cost (JSON; governance/segments.py)
    ("ALTER TABLE ledger ADD COLUMN segments TEXT",),
    # background responses (api/responses/background.py): the gateway process generating one,
    # and every kept response's end of retention (`store_ttl_days`)
    (
        "ALTER TABLE responses ADD COLUMN owner TEXT",
        "ALTER TABLE responses ADD COLUMN expires_at REAL",
        "CREATE INDEX responses_expires ON responses (expires_at)",
    ),
    # the reapers tell a request billed already by its open id, not its request id, which a client
    # may choose and reuse (governance/durable.py); ids sort by time within a process, so the
    # index is written at a few hot pages. A journal written before this change is read against
    # rows without open ids: a request committed in the instant before a crash could be billed twice.
    (
        "ALTER TABLE ledger ADD COLUMN journal_id TEXT",
        "DROP INDEX IF EXISTS ledger_request",
        "CREATE INDEX ledger_journal ON ledger (journal_id) WHERE journal_id IS NOT NULL",
    ),
]
