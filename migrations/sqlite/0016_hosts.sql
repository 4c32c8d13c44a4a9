-- Hosts (issue 12): CloudStack's zone -> pod -> cluster -> host model. A pod
-- (host_pod_ref) groups clusters of a zone, a cluster groups hosts of one
-- hypervisor, a host is one host agent that runs routers and VMs. Routers and
-- VMs name the host they run on (host_id; NULL until placed). Removal is soft,
-- as CloudStack's.
-- Keep in step with the other backend's 0016_hosts.sql.
CREATE TABLE host_pod_ref (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                TEXT    NOT NULL UNIQUE,
    name                TEXT    NOT NULL,
    data_center_id      INTEGER NOT NULL REFERENCES data_center (id),
    gateway             TEXT    NOT NULL,
    -- The pod's management network, as a CIDR (netmask applied to the gateway).
    cidr_address        TEXT    NOT NULL,
    cidr_size           INTEGER NOT NULL,
    -- The reserved system range, start and end (end may be absent).
    start_ip            TEXT    NOT NULL,
    end_ip              TEXT,
    -- Enabled or Disabled.
    allocation_state    TEXT    NOT NULL DEFAULT 'Enabled',
    created             INTEGER NOT NULL,
    removed             INTEGER
);
-- A pod's name is unique among the live pods of its zone.
CREATE UNIQUE INDEX host_pod_ref_live_name ON host_pod_ref (data_center_id, name)
    WHERE removed IS NULL;

CREATE TABLE cluster (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                TEXT    NOT NULL UNIQUE,
    name                TEXT    NOT NULL,
    pod_id              INTEGER NOT NULL REFERENCES host_pod_ref (id),
    data_center_id      INTEGER NOT NULL REFERENCES data_center (id),
    hypervisor_type     TEXT    NOT NULL,
    -- CloudManaged or ExternalManaged.
    cluster_type        TEXT    NOT NULL DEFAULT 'CloudManaged',
    allocation_state    TEXT    NOT NULL DEFAULT 'Enabled',
    managed_state       TEXT    NOT NULL DEFAULT 'Managed',
    created             INTEGER NOT NULL,
    removed             INTEGER
);
-- A cluster's name is unique among the live clusters of its pod.
CREATE UNIQUE INDEX cluster_live_name ON cluster (pod_id, name) WHERE removed IS NULL;

CREATE TABLE host (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                TEXT    NOT NULL UNIQUE,
    name                TEXT    NOT NULL,
    -- Routing: a host that runs routers and VMs.
    type                TEXT    NOT NULL DEFAULT 'Routing',
    -- Up, Down, Disconnected, Connecting, Alert.
    status              TEXT    NOT NULL DEFAULT 'Up',
    -- Enabled, Disabled, PrepareForMaintenance, ErrorInMaintenance, Maintenance.
    resource_state      TEXT    NOT NULL DEFAULT 'Enabled',
    -- How managers reach its host agent: unix:///path or https://host:port.
    url                 TEXT    NOT NULL,
    -- The address listHosts shows (the url's host, or the underlay address).
    private_ip_address  TEXT,
    data_center_id      INTEGER NOT NULL REFERENCES data_center (id),
    pod_id              INTEGER NOT NULL REFERENCES host_pod_ref (id),
    cluster_id          INTEGER REFERENCES cluster (id),
    hypervisor_type     TEXT    NOT NULL,
    -- Where other hosts reach its VTEPs, and that network's MTU (NULL: no
    -- underlay, segments stay on the host).
    underlay_address    TEXT,
    underlay_mtu        INTEGER,
    -- The host agent's version, CPUs and memory (bytes), as it reported them.
    version             TEXT,
    cpus                INTEGER,
    ram                 INTEGER,
    -- Epoch ms of the last answer of its host agent, and of its disconnection.
    last_ping           INTEGER,
    disconnected        INTEGER,
    created             INTEGER NOT NULL,
    removed             INTEGER
);
-- One live host per host agent address in a zone (the embedded host agent of
-- a single machine serves every zone of it).
CREATE UNIQUE INDEX host_live_url ON host (data_center_id, url) WHERE removed IS NULL;
CREATE INDEX host_cluster ON host (cluster_id, removed);

ALTER TABLE domain_router ADD COLUMN host_id INTEGER REFERENCES host (id);
ALTER TABLE vm_instance ADD COLUMN host_id INTEGER REFERENCES host (id);
CREATE INDEX domain_router_host ON domain_router (host_id, removed);
CREATE INDEX vm_instance_host ON vm_instance (host_id, removed);
