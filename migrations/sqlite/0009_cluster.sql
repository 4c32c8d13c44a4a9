-- The managers of one database (issue 11): CloudStack's mshost. Each manager
-- joins under its name (the owner name of the jobs it claims), renews
-- last_heartbeat while it runs and records stopped when it leaves; a manager
-- whose heartbeat is older than cluster.heartbeat.threshold counts as Down.
-- Keep in step with the other backend's 0009_cluster.sql.
CREATE TABLE mshost (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid            TEXT    NOT NULL UNIQUE,
    name            TEXT    NOT NULL UNIQUE,
    -- Where its API listens (host:port).
    address         TEXT    NOT NULL,
    version         TEXT    NOT NULL,
    os_distribution TEXT    NOT NULL DEFAULT '',
    kernel_version  TEXT    NOT NULL DEFAULT '',
    -- Epoch ms: the host's last boot, this run's start, its last stop.
    last_boot       INTEGER,
    started         INTEGER NOT NULL,
    stopped         INTEGER,
    last_heartbeat  INTEGER NOT NULL
);

-- The agent CA every manager of the database uses (one row): certificates
-- in PEM, private keys sealed with the database key (never in clear).
CREATE TABLE cluster_ca (
    id              INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    ca_cert         TEXT    NOT NULL,
    ca_key          TEXT    NOT NULL,
    client_cert     TEXT    NOT NULL,
    client_key      TEXT    NOT NULL,
    created         INTEGER NOT NULL
);
