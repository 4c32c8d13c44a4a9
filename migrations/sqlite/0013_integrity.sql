-- Integrity the API promises, kept by the database itself (issue 11). SQLite
-- serves one manager, whose VPC lock orders the overlap checks, and has no
-- exclusion constraints: of the other backend's 0013_integrity.sql it gets the
-- private gateways' unique address per VLAN and subnet of a physical network.
-- Keep in step with it.
ALTER TABLE vpc_gateways ADD COLUMN physical_network_id INTEGER
    REFERENCES physical_network (id);
UPDATE vpc_gateways SET physical_network_id =
    (SELECT n.physical_network_id FROM networks n WHERE n.id = vpc_gateways.network_id);
CREATE UNIQUE INDEX vpc_gateways_vlan_address_live
    ON vpc_gateways (physical_network_id, broadcast_uri, ip4_address, netmask)
    WHERE removed IS NULL;
