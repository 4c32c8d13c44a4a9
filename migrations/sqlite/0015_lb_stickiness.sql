-- Load balancer stickiness policies (issue 15, CloudStack's
-- load_balancer_stickiness_policies): one live policy per rule, its method
-- (LbCookie, AppCookie, SourceBased) and its `param` pairs as a JSON array of
-- [name, value]. Removal is soft, as CloudStack's.
-- Keep in step with the other backend's 0015_lb_stickiness.sql.
CREATE TABLE load_balancer_stickiness_policies (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                TEXT    NOT NULL UNIQUE,
    load_balancer_id    INTEGER NOT NULL REFERENCES load_balancing_rules (id),
    name                TEXT    NOT NULL,
    description         TEXT,
    method_name         TEXT    NOT NULL,
    params              TEXT    NOT NULL DEFAULT '[]',
    -- Add until the router has it, then Active; Revoke once removed.
    state               TEXT    NOT NULL DEFAULT 'Add',
    display             INTEGER NOT NULL DEFAULT 1 CHECK (display IN (0, 1)),
    created             INTEGER NOT NULL,
    removed             INTEGER
);
-- One live policy per rule: two concurrent creates cannot both win.
CREATE UNIQUE INDEX lb_stickiness_live ON load_balancer_stickiness_policies (load_balancer_id)
    WHERE removed IS NULL;
