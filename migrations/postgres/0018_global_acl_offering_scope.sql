-- Global ACL lists and the domains and zones of VPC offerings (issue 15).
-- Kept in step with the other backend's 0018_global_acl_offering_scope.sql.

-- A global list (CloudStack's vpc_id 0 that is not one of the two
-- built-ins): made by the root admin without a VPC, usable by every VPC's
-- tiers and private gateways. Like the built-ins it has no VPC.
ALTER TABLE network_acl ADD COLUMN is_global BOOLEAN NOT NULL DEFAULT FALSE;

-- The domains a VPC offering is restricted to (CloudStack's
-- vpc_offering_details rows with key domainid); none: every domain.
CREATE TABLE vpc_offering_domain (
    vpc_offering_id BIGINT NOT NULL REFERENCES vpc_offerings (id),
    domain_id       BIGINT NOT NULL REFERENCES domain (id),
    PRIMARY KEY (vpc_offering_id, domain_id)
);

-- The zones a VPC offering is restricted to (key zoneid); none: every zone.
CREATE TABLE vpc_offering_zone (
    vpc_offering_id BIGINT NOT NULL REFERENCES vpc_offerings (id),
    zone_id         BIGINT NOT NULL REFERENCES data_center (id),
    PRIMARY KEY (vpc_offering_id, zone_id)
);
