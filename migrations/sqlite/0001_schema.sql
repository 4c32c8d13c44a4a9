-- vpc-manager schema, SQLite flavour. Keep in step with ../postgres/0001_schema.sql:
-- same tables, columns and indexes; only the types differ (INTEGER PRIMARY KEY for
-- BIGINT identity, INTEGER 0/1 for BOOLEAN). Times are epoch milliseconds, UUIDs text.
-- Table names follow CloudStack's `cloud` database where people know them, except
-- `users` (USER is reserved in PostgreSQL).

CREATE TABLE domain (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid            TEXT    NOT NULL UNIQUE,
    parent_id       INTEGER REFERENCES domain (id),
    name            TEXT    NOT NULL,
    -- '/' for ROOT, '/a/' for a child, '/a/b/' below it: subtree = path prefix.
    path            TEXT    NOT NULL,
    level           INTEGER NOT NULL,
    network_domain  TEXT,
    created         INTEGER NOT NULL,
    removed         INTEGER
);
CREATE UNIQUE INDEX domain_path_live ON domain (path) WHERE removed IS NULL;
CREATE INDEX domain_parent ON domain (parent_id);

CREATE TABLE account (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid            TEXT    NOT NULL UNIQUE,
    account_name    TEXT    NOT NULL,
    -- 0 user, 1 root admin, 2 domain admin (CloudStack Account.Type ordinals).
    type            INTEGER NOT NULL,
    domain_id       INTEGER NOT NULL REFERENCES domain (id),
    state           TEXT    NOT NULL DEFAULT 'enabled',
    network_domain  TEXT,
    created         INTEGER NOT NULL,
    removed         INTEGER
);
CREATE UNIQUE INDEX account_name_live ON account (domain_id, account_name) WHERE removed IS NULL;

CREATE TABLE users (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid            TEXT    NOT NULL UNIQUE,
    account_id      INTEGER NOT NULL REFERENCES account (id),
    -- Copied from the account so that a username can be unique per domain.
    domain_id       INTEGER NOT NULL REFERENCES domain (id),
    username        TEXT    NOT NULL,
    password        TEXT,
    firstname       TEXT    NOT NULL DEFAULT '',
    lastname        TEXT    NOT NULL DEFAULT '',
    email           TEXT,
    api_key         TEXT    UNIQUE,
    secret_key      TEXT,
    state           TEXT    NOT NULL DEFAULT 'enabled',
    created         INTEGER NOT NULL,
    removed         INTEGER
);
CREATE UNIQUE INDEX users_name_live ON users (domain_id, username) WHERE removed IS NULL;
CREATE INDEX users_account ON users (account_id);

CREATE TABLE sessions (
    session_key     TEXT    PRIMARY KEY,
    user_id         INTEGER NOT NULL REFERENCES users (id),
    created         INTEGER NOT NULL,
    expires         INTEGER NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_id);

CREATE TABLE async_job (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid            TEXT    NOT NULL UNIQUE,
    user_id         INTEGER NOT NULL REFERENCES users (id),
    account_id      INTEGER NOT NULL REFERENCES account (id),
    cmd             TEXT    NOT NULL,
    cmd_info        TEXT    NOT NULL DEFAULT '{}',
    instance_type   TEXT,
    instance_uuid   TEXT,
    -- e.g. 'vpc:<id>': jobs with the same sync object run one at a time.
    sync_object     TEXT,
    -- 0 in progress, 1 succeeded, 2 failed, 3 cancelled.
    status          INTEGER NOT NULL DEFAULT 0,
    result_code     INTEGER NOT NULL DEFAULT 0,
    result_type     TEXT,
    result          TEXT,
    -- The manager running the job; NULL while it waits to be claimed.
    owner_manager   TEXT,
    created         INTEGER NOT NULL,
    last_updated    INTEGER NOT NULL,
    completed       INTEGER
);
CREATE INDEX async_job_pending ON async_job (status, owner_manager);
CREATE INDEX async_job_sync ON async_job (sync_object, status);
CREATE INDEX async_job_account ON async_job (account_id);

-- One row per sync object held by a running job. The primary key is what makes
-- "one job per object" hold across managers sharing a database.
CREATE TABLE async_job_sync_lock (
    sync_object     TEXT    PRIMARY KEY,
    job_id          INTEGER NOT NULL REFERENCES async_job (id),
    acquired        INTEGER NOT NULL
);

CREATE TABLE data_center (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid            TEXT    NOT NULL UNIQUE,
    name            TEXT    NOT NULL,
    description     TEXT,
    dns1            TEXT,
    dns2            TEXT,
    internal_dns1   TEXT,
    internal_dns2   TEXT,
    guest_cidr      TEXT,
    network_type    TEXT    NOT NULL DEFAULT 'Advanced',
    allocation_state TEXT   NOT NULL DEFAULT 'Enabled',
    domain_id       INTEGER REFERENCES domain (id),
    network_domain  TEXT,
    created         INTEGER NOT NULL,
    removed         INTEGER
);
CREATE UNIQUE INDEX data_center_name_live ON data_center (name) WHERE removed IS NULL;

CREATE TABLE physical_network (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid            TEXT    NOT NULL UNIQUE,
    zone_id         INTEGER NOT NULL REFERENCES data_center (id),
    name            TEXT    NOT NULL,
    isolation_method TEXT   NOT NULL DEFAULT 'VLAN',
    vnet_range      TEXT,
    state           TEXT    NOT NULL DEFAULT 'Enabled',
    created         INTEGER NOT NULL,
    removed         INTEGER
);
CREATE INDEX physical_network_zone ON physical_network (zone_id);

CREATE TABLE physical_network_traffic_types (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    physical_network_id INTEGER NOT NULL REFERENCES physical_network (id),
    traffic_type        TEXT    NOT NULL,
    label               TEXT,
    UNIQUE (physical_network_id, traffic_type)
);

CREATE TABLE vlan (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                TEXT    NOT NULL UNIQUE,
    zone_id             INTEGER NOT NULL REFERENCES data_center (id),
    physical_network_id INTEGER REFERENCES physical_network (id),
    vlan_id             TEXT    NOT NULL,
    gateway             TEXT    NOT NULL,
    netmask             TEXT    NOT NULL,
    start_ip            TEXT    NOT NULL,
    end_ip              TEXT    NOT NULL,
    -- The IPv4 range as integers, for overlap checks in SQL.
    start_num           INTEGER NOT NULL,
    end_num             INTEGER NOT NULL,
    created             INTEGER NOT NULL,
    removed             INTEGER
);
CREATE INDEX vlan_zone ON vlan (zone_id, start_num);

-- One row per public address of a range, created with the range (as CloudStack does).
CREATE TABLE user_ip_address (
    id                      INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                    TEXT    NOT NULL UNIQUE,
    zone_id                 INTEGER NOT NULL REFERENCES data_center (id),
    vlan_db_id              INTEGER NOT NULL REFERENCES vlan (id),
    public_ip_address       TEXT    NOT NULL,
    ip_num                  INTEGER NOT NULL,
    -- Free, Allocating, Allocated, Releasing.
    state                   TEXT    NOT NULL DEFAULT 'Free',
    allocated               INTEGER,
    account_id              INTEGER REFERENCES account (id),
    domain_id               INTEGER REFERENCES domain (id),
    -- Owners that later migrations add tables for; no foreign keys yet.
    vpc_id                  INTEGER,
    associated_network_id   INTEGER,
    source_nat              INTEGER NOT NULL DEFAULT 0 CHECK (source_nat IN (0, 1)),
    one_to_one_nat          INTEGER NOT NULL DEFAULT 0 CHECK (one_to_one_nat IN (0, 1)),
    UNIQUE (zone_id, ip_num)
);
CREATE INDEX user_ip_address_vlan ON user_ip_address (vlan_db_id, state);

CREATE TABLE network_offerings (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid            TEXT    NOT NULL UNIQUE,
    name            TEXT    NOT NULL,
    unique_name     TEXT    UNIQUE,
    display_text    TEXT    NOT NULL,
    traffic_type    TEXT    NOT NULL DEFAULT 'Guest',
    guest_type      TEXT    NOT NULL DEFAULT 'Isolated',
    state           TEXT    NOT NULL DEFAULT 'Enabled',
    is_default      INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
    for_vpc         INTEGER NOT NULL DEFAULT 0 CHECK (for_vpc IN (0, 1)),
    specify_vlan    INTEGER NOT NULL DEFAULT 0 CHECK (specify_vlan IN (0, 1)),
    conserve_mode   INTEGER NOT NULL DEFAULT 0 CHECK (conserve_mode IN (0, 1)),
    is_persistent   INTEGER NOT NULL DEFAULT 0 CHECK (is_persistent IN (0, 1)),
    availability    TEXT    NOT NULL DEFAULT 'Optional',
    created         INTEGER NOT NULL,
    removed         INTEGER
);

CREATE TABLE ntwk_offering_service_map (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    network_offering_id INTEGER NOT NULL REFERENCES network_offerings (id),
    service             TEXT    NOT NULL,
    provider            TEXT    NOT NULL,
    UNIQUE (network_offering_id, service, provider)
);

CREATE TABLE vpc_offerings (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                TEXT    NOT NULL UNIQUE,
    name                TEXT    NOT NULL,
    unique_name         TEXT    UNIQUE,
    display_text        TEXT    NOT NULL,
    state               TEXT    NOT NULL DEFAULT 'Disabled',
    is_default          INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
    distributed_router  INTEGER NOT NULL DEFAULT 0 CHECK (distributed_router IN (0, 1)),
    redundant_router    INTEGER NOT NULL DEFAULT 0 CHECK (redundant_router IN (0, 1)),
    network_mode        TEXT    NOT NULL DEFAULT 'NATTED',
    internet_protocol   TEXT    NOT NULL DEFAULT 'ipv4',
    sort_key            INTEGER NOT NULL DEFAULT 0,
    created             INTEGER NOT NULL,
    removed             INTEGER
);

CREATE TABLE vpc_offering_service_map (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    vpc_offering_id INTEGER NOT NULL REFERENCES vpc_offerings (id),
    service         TEXT    NOT NULL,
    provider        TEXT    NOT NULL,
    UNIQUE (vpc_offering_id, service, provider)
);

CREATE TABLE configuration (
    name            TEXT    PRIMARY KEY,
    category        TEXT    NOT NULL,
    value           TEXT,
    default_value   TEXT,
    scope           TEXT    NOT NULL DEFAULT 'Global',
    description     TEXT    NOT NULL DEFAULT '',
    component       TEXT    NOT NULL DEFAULT 'management-server',
    is_dynamic      INTEGER NOT NULL DEFAULT 1 CHECK (is_dynamic IN (0, 1)),
    updated         INTEGER
);

CREATE TABLE resource_limit (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    -- CloudStack's resource type name: 'vpc', 'network', 'public_ip', ...
    type            TEXT    NOT NULL,
    max             INTEGER NOT NULL,
    account_id      INTEGER REFERENCES account (id),
    domain_id       INTEGER REFERENCES domain (id),
    CHECK ((account_id IS NULL) <> (domain_id IS NULL))
);
CREATE UNIQUE INDEX resource_limit_account ON resource_limit (type, account_id) WHERE account_id IS NOT NULL;
CREATE UNIQUE INDEX resource_limit_domain ON resource_limit (type, domain_id) WHERE domain_id IS NOT NULL;
