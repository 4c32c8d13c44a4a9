-- Integrity the API promises, kept by the database itself (issue 11), so that
-- two managers of one database can never both accept conflicting rows, even
-- where a code path forgot the VPC's lock. The services still check first, under
-- that lock, and give CloudStack's texts; these constraints are the backstop.
-- Keep in step with the other backend's 0013_integrity.sql (SQLite has one
-- manager and no exclusion constraints: it gets the unique index only).

-- `vpc_id WITH =` inside a GiST exclusion needs btree_gist's operator classes
-- (a trusted extension: a database owner may create it).
CREATE EXTENSION IF NOT EXISTS btree_gist;

-- The live tiers of one VPC never overlap.
ALTER TABLE networks ADD CONSTRAINT networks_tier_cidrs_disjoint
    EXCLUDE USING gist (vpc_id WITH =, (cidr::inet) inet_ops WITH &&)
    WHERE (removed IS NULL AND vpc_id IS NOT NULL AND cidr IS NOT NULL
           AND traffic_type = 'Guest');

-- The static routes of one VPC that are not being withdrawn never overlap.
ALTER TABLE static_routes ADD CONSTRAINT static_routes_cidrs_disjoint
    EXCLUDE USING gist (vpc_id WITH =, (cidr::inet) inet_ops WITH &&)
    WHERE (removed IS NULL AND state <> 'Revoke');

-- Port forwarding and load-balancing rules of one public address and protocol
-- that are not being withdrawn never share a public port.
ALTER TABLE firewall_rules ADD CONSTRAINT firewall_rules_ports_disjoint
    EXCLUDE USING gist (
        ip_address_id WITH =,
        protocol WITH =,
        int8range(start_port, COALESCE(end_port, start_port), '[]') WITH &&)
    WHERE (removed IS NULL AND state <> 'Revoke' AND start_port IS NOT NULL
           AND purpose IN ('PortForwarding', 'LoadBalancing'));

-- A private gateway's address is taken once per VLAN (and subnet) of a
-- physical network, whichever VPC asks. The physical network is the private
-- network's, copied here so that one index can hold the rule.
ALTER TABLE vpc_gateways ADD COLUMN physical_network_id BIGINT
    REFERENCES physical_network (id);
UPDATE vpc_gateways g SET physical_network_id = n.physical_network_id
    FROM networks n WHERE n.id = g.network_id;
CREATE UNIQUE INDEX vpc_gateways_vlan_address_live
    ON vpc_gateways (physical_network_id, broadcast_uri, ip4_address, netmask)
    WHERE removed IS NULL;
