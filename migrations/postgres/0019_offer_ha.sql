-- Host loss (issue 12): a service offering may ask for HA (CloudStack's
-- `offerha`, column `ha_enabled`): the VMs of a host declared Down whose
-- offering has it are started on another host instead of staying Stopped.
-- Keep in step with the other backend's 0019_offer_ha.sql.
ALTER TABLE service_offering ADD COLUMN ha_enabled BOOLEAN NOT NULL DEFAULT FALSE;
