-- What unmodified CloudStack clients need (issue 15). Keep in step with the
-- other backend's 0012_clients.sql.

-- System offerings: CloudStack's routers run from a service offering too, the
-- "System Offering For Software Router" (unique name Cloud.Com-SoftwareRouter),
-- which every network offering without its own names as `serviceofferingid`.
-- system_vm_type is NULL for the offerings of guest VMs.
ALTER TABLE service_offering ADD COLUMN system_vm_type TEXT;
ALTER TABLE service_offering ADD COLUMN unique_name TEXT;
-- The ROOT disk a VM of the offering gets, in GiB (NULL: the template's size).
ALTER TABLE service_offering ADD COLUMN root_disk_size INTEGER;
CREATE UNIQUE INDEX service_offering_unique_name ON service_offering (unique_name);
INSERT INTO service_offering (uuid, name, display_text, cpu, speed, ram_size, is_default, created,
                              system_vm_type, unique_name) VALUES
    ('4c3e1a52-0003-4b8e-8d1f-5e0a00000003', 'System Offering For Software Router',
     'System service offering for software router', 1, 500, 256, 0, 0,
     'domainrouter', 'Cloud.Com-SoftwareRouter');

-- A template's virtual size in bytes: the size of the ROOT volume of its VMs.
ALTER TABLE vm_template ADD COLUMN size INTEGER NOT NULL DEFAULT 1073741824;

-- Resource tags (CloudStack's resource_tags): a key and value on one resource,
-- named by its type (Vpc, Network, UserVm, ...) and UUID, owned by the
-- resource's account. A key appears once per resource.
CREATE TABLE resource_tags (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid            TEXT    NOT NULL UNIQUE,
    tag_key         TEXT    NOT NULL,
    tag_value       TEXT    NOT NULL,
    resource_type   TEXT    NOT NULL,
    resource_id     INTEGER NOT NULL,
    resource_uuid   TEXT    NOT NULL,
    account_id      INTEGER NOT NULL REFERENCES account (id),
    domain_id       INTEGER NOT NULL REFERENCES domain (id),
    customer        TEXT,
    created         INTEGER NOT NULL,
    UNIQUE (resource_type, resource_id, tag_key)
);
CREATE INDEX resource_tags_by_resource ON resource_tags (resource_type, resource_uuid);

-- The service offering a router runs with when changeServiceForRouter gave
-- it one; a router without a row runs with the default router offering.
CREATE TABLE router_service_offering (
    router_id           INTEGER  NOT NULL PRIMARY KEY REFERENCES domain_router (id),
    service_offering_id INTEGER  NOT NULL REFERENCES service_offering (id)
);
