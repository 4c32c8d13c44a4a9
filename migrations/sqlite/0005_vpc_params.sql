-- createVPC's dns1/dns2 and publicmtu (issue 16): the upstream resolvers of the
-- router's DNS instead of the zone's, and the MTU of the router's public NIC
-- (CloudStack's vpc.dns1, vpc.dns2, vpc.public_mtu). Keep in step with the
-- other backend's 0005_vpc_params.sql.
ALTER TABLE vpc ADD COLUMN dns1 TEXT;
ALTER TABLE vpc ADD COLUMN dns2 TEXT;
-- CloudStack's NetworkService.DEFAULT_MTU for VPCs made before this column.
ALTER TABLE vpc ADD COLUMN public_mtu INTEGER NOT NULL DEFAULT 1500;
