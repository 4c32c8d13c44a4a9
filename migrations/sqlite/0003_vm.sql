-- Guest VMs and what they are deployed from, SQLite flavour. Keep in step with
-- ../postgres/0003_vm.sql.

CREATE TABLE service_offering (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                TEXT    NOT NULL UNIQUE,
    name                TEXT    NOT NULL,
    display_text        TEXT    NOT NULL DEFAULT '',
    cpu                 INTEGER NOT NULL DEFAULT 1,
    speed               INTEGER NOT NULL DEFAULT 500,
    ram_size            INTEGER NOT NULL DEFAULT 512,
    is_default          INTEGER NOT NULL DEFAULT 0 CHECK (is_default IN (0, 1)),
    created             INTEGER NOT NULL,
    removed             INTEGER
);

CREATE TABLE vm_template (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                TEXT    NOT NULL UNIQUE,
    name                TEXT    NOT NULL,
    display_text        TEXT    NOT NULL DEFAULT '',
    format              TEXT    NOT NULL DEFAULT 'NETNS',
    os_type             TEXT    NOT NULL DEFAULT 'Other Linux (64-bit)',
    is_public           INTEGER NOT NULL DEFAULT 1 CHECK (is_public IN (0, 1)),
    is_featured         INTEGER NOT NULL DEFAULT 1 CHECK (is_featured IN (0, 1)),
    created             INTEGER NOT NULL,
    removed             INTEGER
);

CREATE TABLE vm_instance (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                TEXT    NOT NULL UNIQUE,
    -- The user's name (also the host name the router's DNS answers).
    name                TEXT    NOT NULL,
    -- i-<account id>-<id>-VM
    instance_name       TEXT    NOT NULL,
    display_name        TEXT    NOT NULL DEFAULT '',
    zone_id             INTEGER NOT NULL REFERENCES data_center (id),
    account_id          INTEGER NOT NULL REFERENCES account (id),
    domain_id           INTEGER NOT NULL REFERENCES domain (id),
    service_offering_id INTEGER NOT NULL REFERENCES service_offering (id),
    template_id         INTEGER NOT NULL REFERENCES vm_template (id),
    -- Starting, Running, Stopping, Stopped, Destroyed, Expunging, Error.
    state               TEXT    NOT NULL DEFAULT 'Stopped',
    created             INTEGER NOT NULL,
    removed             INTEGER
);
CREATE INDEX vm_instance_account ON vm_instance (account_id, removed);

-- Static NAT: the VM and its address behind a public address.
ALTER TABLE user_ip_address ADD COLUMN vm_id INTEGER REFERENCES vm_instance (id);
ALTER TABLE user_ip_address ADD COLUMN vm_ip TEXT;
-- Port forwarding: the VM a rule forwards to.
ALTER TABLE firewall_rules ADD COLUMN vm_id INTEGER REFERENCES vm_instance (id);
-- Load balancing: the VM behind a member address.
ALTER TABLE load_balancer_vm_map ADD COLUMN vm_id INTEGER REFERENCES vm_instance (id);

INSERT INTO service_offering (uuid, name, display_text, cpu, speed, ram_size, is_default, created) VALUES
    ('4c3e1a52-0001-4b8e-8d1f-5e0a00000001', 'Small Instance', 'Small Instance (namespace VM)', 1, 500, 512, 1, 0),
    ('4c3e1a52-0002-4b8e-8d1f-5e0a00000002', 'Medium Instance', 'Medium Instance (namespace VM)', 1, 1000, 1024, 0, 0);
INSERT INTO vm_template (uuid, name, display_text, format, os_type, is_public, is_featured, created) VALUES
    ('4c3e1a52-0101-4b8e-8d1f-5e0a00000101', 'netns-linux', 'Built-in template: a Linux network namespace with a DHCP client', 'NETNS', 'Other Linux (64-bit)', 1, 1, 0);
