-- Events (issue 15, CloudStack's `event` table): what happened, by whom, to
-- which resource. An async command leaves Scheduled, Started and Completed
-- rows linked by `start_id` (the id of its first row), a sync command one
-- Completed row. Kept in step with the other backend's 0017_events.sql.
CREATE TABLE event (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid            TEXT    NOT NULL UNIQUE,
    -- CloudStack's EventTypes name (VPC.CREATE, NET.RULEADD ...).
    type            TEXT    NOT NULL,
    -- Created, Scheduled, Started or Completed.
    state           TEXT    NOT NULL,
    -- INFO, WARN or ERROR.
    level           TEXT    NOT NULL DEFAULT 'INFO',
    description     TEXT    NOT NULL,
    user_id         INTEGER NOT NULL,
    account_id      INTEGER NOT NULL REFERENCES account (id),
    domain_id       INTEGER NOT NULL REFERENCES domain (id),
    resource_type   TEXT,
    resource_uuid   TEXT,
    start_id        INTEGER NOT NULL DEFAULT 0,
    archived        INTEGER NOT NULL DEFAULT 0 CHECK (archived IN (0, 1)),
    created         INTEGER NOT NULL
);
CREATE INDEX event_account ON event (account_id, created);
CREATE INDEX event_domain ON event (domain_id, created);
-- The first event of each async job's action, so the job's Started and
-- Completed rows name it as their start (CloudStack's start_id).
CREATE TABLE event_job (
    job_uuid        TEXT    NOT NULL PRIMARY KEY,
    event_id        INTEGER  NOT NULL REFERENCES event (id)
);
