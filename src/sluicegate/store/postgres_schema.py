"""PostgreSQL migrations: an ordered list, applied at start under an advisory lock, so several
gateway processes starting together migrate once. `sluicegate_schema.version` records how far."""

from __future__ import annotations

MIGRATIONS: list[tuple[str, ...]] = [
    (
        """
        CREATE TABLE api_keys (
            id              TEXT PRIMARY KEY,
            name            TEXT NOT NULL,
            key_hash        TEXT NOT NULL UNIQUE,
            key_hint        TEXT NOT NULL,
            created_at      DOUBLE PRECISION NOT NULL,
            revoked_at      DOUBLE PRECISION,
            expires_at      DOUBLE PRECISION,
            budget_nanos    BIGINT,
            spent_nanos     BIGINT NOT NULL DEFAULT 0,
            reserved_nanos  BIGINT NOT NULL DEFAULT 0,
            rpm             BIGINT,
            tpm             BIGINT,
            models          TEXT,
            is_admin        BOOLEAN NOT NULL DEFAULT FALSE,
            updated_at      DOUBLE PRECISION NOT NULL DEFAULT 0
        )
        """,
        """
        CREATE TABLE reservations (
            id            TEXT PRIMARY KEY,
            key_id        TEXT NOT NULL,
            amount_nanos  BIGINT NOT NULL,
            created_at    DOUBLE PRECISION NOT NULL
        )
        """,
        "CREATE INDEX reservations_created ON reservations (created_at)",
        """
        CREATE TABLE ledger (
            id                     BIGSERIAL PRIMARY KEY,
            request_id             TEXT NOT NULL,
            created_at             DOUBLE PRECISION NOT NULL,
            day                    TEXT NOT NULL,
            key_id                 TEXT,
            door                   TEXT NOT NULL,
            model                  TEXT NOT NULL,
            provider               TEXT NOT NULL,
            served_by              TEXT NOT NULL,
            upstream_model         TEXT NOT NULL,
            deployment             TEXT NOT NULL,
            stream                 BOOLEAN NOT NULL,
            status                 INTEGER NOT NULL,
            error_type             TEXT,
            error_code             TEXT,
            finish_reason          TEXT,
            prompt_tokens          BIGINT NOT NULL,
            completion_tokens      BIGINT NOT NULL,
            cached_tokens          BIGINT NOT NULL,
            cache_creation_tokens  BIGINT NOT NULL,
            reasoning_tokens       BIGINT NOT NULL,
            usage_source           TEXT NOT NULL,
            cost_nanos             BIGINT NOT NULL,
            ttft_ms                DOUBLE PRECISION,
            total_ms               DOUBLE PRECISION,
            client_gone            BOOLEAN NOT NULL
        )
        """,
        "CREATE INDEX ledger_created ON ledger (created_at)",
        "CREATE INDEX ledger_key ON ledger (key_id, id)",
        """
        CREATE TABLE usage_daily (
            day                TEXT NOT NULL,
            key_id             TEXT NOT NULL,
            model              TEXT NOT NULL,
            requests           BIGINT NOT NULL,
            errors             BIGINT NOT NULL,
            prompt_tokens      BIGINT NOT NULL,
            completion_tokens  BIGINT NOT NULL,
            cached_tokens      BIGINT NOT NULL,
            reasoning_tokens   BIGINT NOT NULL,
            cost_nanos         BIGINT NOT NULL,
            PRIMARY KEY (day, key_id, model)
        )
        """,
        "CREATE INDEX usage_daily_key ON usage_daily (key_id, day)",
    ),
    # the usage page's recent requests of one model: without it, a model last used long ago
    # means reading the ledger back to its rows (0.4 s at a million rows)
    ("CREATE INDEX ledger_model ON ledger (model, id)",),
    # a batch of budget reservations in one round trip (store.reserve_many), each checked
    # against the budget as the ones before it left it
    (
        """
        CREATE FUNCTION sluicegate_reserve(
            key_ids TEXT[], reservation_ids TEXT[], amounts BIGINT[], at_time DOUBLE PRECISION
        ) RETURNS TABLE (reserved BOOLEAN, balance_nanos BIGINT) LANGUAGE plpgsql AS $$
        DECLARE
            i INTEGER;
            remaining BIGINT;
        BEGIN
            FOR i IN 1 .. coalesce(array_length(reservation_ids, 1), 0) LOOP
                UPDATE api_keys AS k SET reserved_nanos = k.reserved_nanos + amounts[i]
                    WHERE k.id = key_ids[i]
                    AND (k.budget_nanos IS NULL OR k.spent_nanos + k.reserved_nanos + amounts[i] <= k.budget_nanos)
                    RETURNING k.budget_nanos - k.spent_nanos - k.reserved_nanos INTO remaining;
                IF FOUND THEN
                    INSERT INTO reservations (id, key_id, amount_nanos, created_at)
                        VALUES (reservation_ids[i], key_ids[i], amounts[i], at_time);
                    reserved := TRUE;
                    balance_nanos := remaining;
                ELSE
                    reserved := FALSE;
                    SELECT k.budget_nanos - k.spent_nanos - k.reserved_nanos INTO balance_nanos
                        FROM api_keys AS k WHERE k.id = key_ids[i];
                END IF;
                RETURN NEXT;
            END LOOP;
        END
        $$
        """,
    ),
    # no query reads the ledger by time (the usage sums come from usage_daily, the recent
    # requests by id): the index only cost every ledger write
    ("DROP INDEX IF EXISTS ledger_created",),
    # durable admission (governance/durable.py): the gateway processes with their heartbeats (on
    # the database's clock), whose reservations each is, and an open row per admitted request
    # until its record is written; reservations made through the new overload name their process
    (
        """
        CREATE TABLE instances (
            id            TEXT PRIMARY KEY,
            host          TEXT NOT NULL,
            pid           INTEGER NOT NULL,
            pid_start     TEXT NOT NULL,
            started_at    DOUBLE PRECISION NOT NULL,
            heartbeat_at  DOUBLE PRECISION NOT NULL
        )
        """,
        "ALTER TABLE reservations ADD COLUMN instance_id TEXT",
        "CREATE INDEX reservations_instance ON reservations (instance_id)",
        """
        CREATE TABLE ledger_open (
            id           TEXT PRIMARY KEY,
            instance_id  TEXT NOT NULL,
            created_at   DOUBLE PRECISION NOT NULL,
            record       BYTEA NOT NULL
        )
        """,
        "CREATE INDEX ledger_open_instance ON ledger_open (instance_id)",
        """
        CREATE FUNCTION sluicegate_reserve(
            key_ids TEXT[], reservation_ids TEXT[], amounts BIGINT[], at_time DOUBLE PRECISION, instance TEXT
        ) RETURNS TABLE (reserved BOOLEAN, balance_nanos BIGINT) LANGUAGE plpgsql AS $$
        DECLARE
            i INTEGER;
            remaining BIGINT;
        BEGIN
            FOR i IN 1 .. coalesce(array_length(reservation_ids, 1), 0) LOOP
                UPDATE api_keys AS k SET reserved_nanos = k.reserved_nanos + amounts[i]
                    WHERE k.id = key_ids[i]
                    AND (k.budget_nanos IS NULL OR k.spent_nanos + k.reserved_nanos + amounts[i] <= k.budget_nanos)
                    RETURNING k.budget_nanos - k.spent_nanos - k.reserved_nanos INTO remaining;
                IF FOUND THEN
                    INSERT INTO reservations (id, key_id, amount_nanos, created_at, instance_id)
                        VALUES (reservation_ids[i], key_ids[i], amounts[i], at_time, instance);
                    reserved := TRUE;
                    balance_nanos := remaining;
                ELSE
                    reserved := FALSE;
                    SELECT k.budget_nanos - k.spent_nanos - k.reserved_nanos INTO balance_nanos
                        FROM api_keys AS k WHERE k.id = key_ids[i];
                END IF;
                RETURN NEXT;
            END LOOP;
        END
        $$
        """,
    ),
    # the Responses door's kept responses (store: true; store/postgres_responses.py), here when
    # keys and usage are, so every gateway sharing the database finds them
    (
        """
        CREATE TABLE responses (
            id                    TEXT PRIMARY KEY,
            key_id                TEXT NOT NULL,
            created_at            DOUBLE PRECISION NOT NULL,
            previous_response_id  TEXT,
            input_items           BYTEA NOT NULL,
            response              BYTEA NOT NULL
        )
        """,
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
        "ALTER TABLE responses ADD COLUMN expires_at DOUBLE PRECISION",
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
