-- VPCs and what lives in them, SQLite flavour. Keep in step with
-- ../postgres/0002_vpc.sql (same tables, columns and indexes; only the types differ).
-- Times are epoch milliseconds, UUIDs text, rows are soft-deleted through `removed`.

CREATE TABLE vpc (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                TEXT    NOT NULL UNIQUE,
    name                TEXT    NOT NULL,
    display_text        TEXT    NOT NULL DEFAULT '',
    zone_id             INTEGER NOT NULL REFERENCES data_center (id),
    cidr                TEXT    NOT NULL,
    account_id          INTEGER NOT NULL REFERENCES account (id),
    domain_id           INTEGER NOT NULL REFERENCES domain (id),
    vpc_offering_id     INTEGER NOT NULL REFERENCES vpc_offerings (id),
    -- Enabled or Inactive.
    state               TEXT    NOT NULL DEFAULT 'Enabled',
    network_domain      TEXT,
    restart_required    INTEGER NOT NULL DEFAULT 0 CHECK (restart_required IN (0, 1)),
    redundant           INTEGER NOT NULL DEFAULT 0 CHECK (redundant IN (0, 1)),
    source_nat_ip_id    INTEGER REFERENCES user_ip_address (id),
    created             INTEGER NOT NULL,
    removed             INTEGER
);
CREATE INDEX vpc_account ON vpc (account_id, removed);
CREATE INDEX vpc_zone ON vpc (zone_id);

-- ACL lists. vpc_id NULL marks the two built-in lists seeded below.
CREATE TABLE network_acl (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                TEXT    NOT NULL UNIQUE,
    name                TEXT    NOT NULL,
    description         TEXT    NOT NULL DEFAULT '',
    vpc_id              INTEGER REFERENCES vpc (id),
    created             INTEGER NOT NULL,
    removed             INTEGER
);
CREATE INDEX network_acl_vpc ON network_acl (vpc_id);

CREATE TABLE network_acl_item (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                TEXT    NOT NULL UNIQUE,
    acl_id              INTEGER NOT NULL REFERENCES network_acl (id),
    number              INTEGER NOT NULL,
    -- Allow or Deny.
    action              TEXT    NOT NULL,
    -- Ingress or Egress.
    traffic_type        TEXT    NOT NULL,
    -- tcp, udp, icmp, all or a protocol number.
    protocol            TEXT    NOT NULL,
    start_port          INTEGER,
    end_port            INTEGER,
    icmp_type           INTEGER,
    icmp_code           INTEGER,
    -- Comma-separated CIDRs.
    cidr_list           TEXT    NOT NULL DEFAULT '0.0.0.0/0',
    -- Staged, Add, Active or Revoke.
    state               TEXT    NOT NULL DEFAULT 'Staged',
    reason              TEXT,
    created             INTEGER NOT NULL,
    removed             INTEGER
);
CREATE UNIQUE INDEX network_acl_item_number_live ON network_acl_item (acl_id, number)
    WHERE removed IS NULL;

-- Guest networks: VPC tiers (vpc_id set) and private-gateway networks.
CREATE TABLE networks (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                TEXT    NOT NULL UNIQUE,
    name                TEXT    NOT NULL,
    display_text        TEXT    NOT NULL DEFAULT '',
    zone_id             INTEGER NOT NULL REFERENCES data_center (id),
    physical_network_id INTEGER REFERENCES physical_network (id),
    vpc_id              INTEGER REFERENCES vpc (id),
    account_id          INTEGER NOT NULL REFERENCES account (id),
    domain_id           INTEGER NOT NULL REFERENCES domain (id),
    network_offering_id INTEGER NOT NULL REFERENCES network_offerings (id),
    cidr                TEXT,
    gateway             TEXT,
    netmask             TEXT,
    network_domain      TEXT,
    -- vlan://100, vxlan://5001 ...
    broadcast_uri       TEXT,
    vnet                TEXT,
    -- Allocated, Implemented, Shutdown or Destroy.
    state               TEXT    NOT NULL DEFAULT 'Allocated',
    network_acl_id      INTEGER REFERENCES network_acl (id),
    -- Guest, Public, Control or PrivateGateway.
    traffic_type        TEXT    NOT NULL DEFAULT 'Guest',
    guru_name           TEXT,
    created             INTEGER NOT NULL,
    removed             INTEGER
);
CREATE INDEX networks_vpc ON networks (vpc_id, removed);
CREATE INDEX networks_account ON networks (account_id);

-- One row per guest VLAN/VNI of a physical network.
CREATE TABLE op_dc_vnet_alloc (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    zone_id             INTEGER NOT NULL REFERENCES data_center (id),
    physical_network_id INTEGER NOT NULL REFERENCES physical_network (id),
    vnet                TEXT    NOT NULL,
    -- The vnet as a number, to hand out the lowest first.
    vnet_num            INTEGER NOT NULL,
    taken               INTEGER,
    network_id          INTEGER,
    UNIQUE (physical_network_id, vnet)
);
CREATE INDEX op_dc_vnet_alloc_free ON op_dc_vnet_alloc (physical_network_id, taken, vnet_num);

CREATE TABLE domain_router (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                TEXT    NOT NULL UNIQUE,
    -- r-<id>-VM
    name                TEXT    NOT NULL,
    vpc_id              INTEGER REFERENCES vpc (id),
    zone_id             INTEGER NOT NULL REFERENCES data_center (id),
    account_id          INTEGER NOT NULL REFERENCES account (id),
    domain_id           INTEGER NOT NULL REFERENCES domain (id),
    -- Starting, Running, Stopping, Stopped, Error or Destroyed.
    state               TEXT    NOT NULL DEFAULT 'Stopped',
    config_generation   INTEGER NOT NULL DEFAULT 0,
    applied_generation  INTEGER NOT NULL DEFAULT 0,
    agent_endpoint      TEXT,
    created             INTEGER NOT NULL,
    removed             INTEGER
);
CREATE INDEX domain_router_vpc ON domain_router (vpc_id, removed);

CREATE TABLE nics (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                TEXT    NOT NULL UNIQUE,
    router_id           INTEGER REFERENCES domain_router (id),
    vm_id               INTEGER,
    network_id          INTEGER NOT NULL REFERENCES networks (id),
    device_index        INTEGER NOT NULL,
    mac_address         TEXT    NOT NULL,
    ip4_address         TEXT,
    netmask             TEXT,
    gateway             TEXT,
    -- Guest, Public, Private or Control.
    role                TEXT    NOT NULL,
    state               TEXT    NOT NULL DEFAULT 'Allocated',
    created             INTEGER NOT NULL,
    removed             INTEGER,
    CHECK ((router_id IS NULL) <> (vm_id IS NULL))
);
CREATE UNIQUE INDEX nics_mac_live ON nics (mac_address) WHERE removed IS NULL;
CREATE INDEX nics_router ON nics (router_id, removed);
CREATE INDEX nics_network ON nics (network_id, removed);

-- Private gateways.
CREATE TABLE vpc_gateways (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                TEXT    NOT NULL UNIQUE,
    vpc_id              INTEGER NOT NULL REFERENCES vpc (id),
    network_id          INTEGER NOT NULL REFERENCES networks (id),
    ip4_address         TEXT    NOT NULL,
    gateway             TEXT    NOT NULL,
    netmask             TEXT    NOT NULL,
    broadcast_uri       TEXT    NOT NULL,
    source_nat          INTEGER NOT NULL DEFAULT 0 CHECK (source_nat IN (0, 1)),
    network_acl_id      INTEGER REFERENCES network_acl (id),
    -- Creating, Ready or Deleting.
    state               TEXT    NOT NULL DEFAULT 'Creating',
    account_id          INTEGER NOT NULL REFERENCES account (id),
    domain_id           INTEGER NOT NULL REFERENCES domain (id),
    created             INTEGER NOT NULL,
    removed             INTEGER
);
CREATE INDEX vpc_gateways_vpc ON vpc_gateways (vpc_id, removed);

CREATE TABLE static_routes (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                TEXT    NOT NULL UNIQUE,
    vpc_id              INTEGER NOT NULL REFERENCES vpc (id),
    vpc_gateway_id      INTEGER REFERENCES vpc_gateways (id),
    cidr                TEXT    NOT NULL,
    next_hop            TEXT,
    -- Staged, Add, Active or Revoke.
    state               TEXT    NOT NULL DEFAULT 'Staged',
    account_id          INTEGER NOT NULL REFERENCES account (id),
    domain_id           INTEGER NOT NULL REFERENCES domain (id),
    created             INTEGER NOT NULL,
    removed             INTEGER
);
CREATE INDEX static_routes_vpc ON static_routes (vpc_id, removed);

-- Port forwarding, static NAT and load-balancing rules on public addresses.
CREATE TABLE firewall_rules (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                TEXT    NOT NULL UNIQUE,
    ip_address_id       INTEGER NOT NULL REFERENCES user_ip_address (id),
    network_id          INTEGER NOT NULL REFERENCES networks (id),
    -- PortForwarding, StaticNat or LoadBalancing.
    purpose             TEXT    NOT NULL,
    protocol            TEXT    NOT NULL,
    start_port          INTEGER,
    end_port            INTEGER,
    dest_ip             TEXT,
    dest_start_port     INTEGER,
    dest_end_port       INTEGER,
    source_cidrs        TEXT,
    -- Staged, Add, Active or Revoke.
    state               TEXT    NOT NULL DEFAULT 'Add',
    account_id          INTEGER NOT NULL REFERENCES account (id),
    domain_id           INTEGER NOT NULL REFERENCES domain (id),
    created             INTEGER NOT NULL,
    removed             INTEGER
);
CREATE INDEX firewall_rules_ip ON firewall_rules (ip_address_id, removed);
CREATE INDEX firewall_rules_network ON firewall_rules (network_id, removed);

CREATE TABLE load_balancing_rules (
    id                  INTEGER PRIMARY KEY REFERENCES firewall_rules (id),
    name                TEXT    NOT NULL,
    algorithm           TEXT    NOT NULL DEFAULT 'roundrobin',
    private_port        INTEGER NOT NULL,
    public_port         INTEGER NOT NULL
);

CREATE TABLE load_balancer_vm_map (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    load_balancer_id    INTEGER NOT NULL REFERENCES load_balancing_rules (id),
    instance_ip         TEXT    NOT NULL,
    created             INTEGER NOT NULL,
    UNIQUE (load_balancer_id, instance_ip)
);

-- The built-in ACL lists: id 1 default_deny, id 2 default_allow, two rules each. They
-- are inserted exactly once (this migration runs once per database).
INSERT INTO network_acl (uuid, name, description, vpc_id, created) VALUES
    ('8f1c2f4e-0001-4d6a-9e5b-6c1d00000001', 'default_deny', 'Default Network ACL Deny All', NULL, 0),
    ('8f1c2f4e-0002-4d6a-9e5b-6c1d00000002', 'default_allow', 'Default Network ACL Allow All', NULL, 0);
INSERT INTO network_acl_item (uuid, acl_id, number, action, traffic_type, protocol, cidr_list, state, created) VALUES
    ('8f1c2f4e-0101-4d6a-9e5b-6c1d00000101', 1, 1, 'Deny', 'Ingress', 'all', '0.0.0.0/0', 'Active', 0),
    ('8f1c2f4e-0102-4d6a-9e5b-6c1d00000102', 1, 2, 'Deny', 'Egress', 'all', '0.0.0.0/0', 'Active', 0),
    ('8f1c2f4e-0201-4d6a-9e5b-6c1d00000201', 2, 1, 'Allow', 'Ingress', 'all', '0.0.0.0/0', 'Active', 0),
    ('8f1c2f4e-0202-4d6a-9e5b-6c1d00000202', 2, 2, 'Allow', 'Egress', 'all', '0.0.0.0/0', 'Active', 0);
