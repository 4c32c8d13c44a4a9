//! Events, as CloudStack records them: `listEvents` ([`list`]) and
//! `listEventTypes` ([`types`]), and the one place that says which event a
//! command leaves ([`event_of`]) and writes it ([`record`]).
//!
//! The command layer calls [`record`] for every command [`event_of`] names:
//! a sync command leaves one Completed row (INFO, or ERROR when it failed),
//! an async command a Scheduled row in the transaction that queues its job,
//! a Started row when the job starts and a Completed row in the transaction
//! that stores its result; an async-create command first a Created row. That
//! is what CloudStack's `ApiServer` (Scheduled) and `ActionEventInterceptor`
//! (Started, Created, Completed, with "Successfully completed …" / "Error
//! while …") write. Logins leave `USER.LOGIN`.
//!
//! Kept whole because most of it is one data table, CloudStack's event type of each command, read
//! by the recorder and listEventTypes.

mod list;
mod types;

use crate::store::{Exec, Result, event};

pub use list::ListEvents;
pub use types::ListEventTypes;

use crate::server::registry::Registry;

/// Registers the event commands.
pub fn register(registry: &mut Registry) {
    registry.sync::<ListEvents>();
    registry.sync::<ListEventTypes>();
}

/// `USER.LOGIN`.
pub const USER_LOGIN: &str = "USER.LOGIN";

/// Commands and the (CloudStack `EventTypes` name, description) of the
/// event they leave. Types are CloudStack's; the descriptions are written
/// the way its `@ActionEvent` annotations read ("creating VPC").
const EVENTS: &[(&str, &str, &str)] = &[
    (
        "addTrafficType",
        "TRAFFIC.TYPE.CREATE",
        "creating physical network traffic type",
    ),
    (
        "assignToLoadBalancerRule",
        "LB.ASSIGN.TO.RULE",
        "assigning to load balancer",
    ),
    (
        "associateIpAddress",
        "NET.IPASSIGN",
        "associating IP address",
    ),
    (
        "changeServiceForRouter",
        "ROUTER.UPGRADE",
        "upgrading router to use newer service offering",
    ),
    ("createAccount", "ACCOUNT.CREATE", "creating account"),
    ("createDomain", "DOMAIN.CREATE", "creating domain"),
    (
        "createFirewallRule",
        "FIREWALL.OPEN",
        "creating firewall rule",
    ),
    (
        "createLBStickinessPolicy",
        "LB.STICKINESSPOLICY.CREATE",
        "creating load balancer stickiness policy",
    ),
    (
        "createLoadBalancerRule",
        "LB.CREATE",
        "creating load balancer",
    ),
    ("createNetwork", "NETWORK.CREATE", "creating network"),
    (
        "createNetworkACL",
        "NETWORK.ACL.ITEM.CREATE",
        "creating network ACL item",
    ),
    (
        "createNetworkACLList",
        "NETWORK.ACL.CREATE",
        "creating network ACL list",
    ),
    (
        "createNetworkOffering",
        "NETWORK.OFFERING.CREATE",
        "creating network offering",
    ),
    (
        "createPhysicalNetwork",
        "PHYSICAL.NETWORK.CREATE",
        "creating physical network",
    ),
    (
        "createPortForwardingRule",
        "NET.RULEADD",
        "creating port forwarding rule",
    ),
    (
        "createPrivateGateway",
        "PRIVATE.GATEWAY.CREATE",
        "creating VPC private gateway",
    ),
    (
        "createSSHKeyPair",
        "REGISTER.SSH.KEYPAIR",
        "creating SSH key pair",
    ),
    (
        "createServiceOffering",
        "SERVICE.OFFERING.CREATE",
        "creating service offering",
    ),
    (
        "createStaticRoute",
        "STATIC.ROUTE.CREATE",
        "creating static route",
    ),
    ("createTags", "CREATE_TAGS", "creating tags"),
    ("createUser", "USER.CREATE", "creating user"),
    ("createVPC", "VPC.CREATE", "creating VPC"),
    (
        "createVPCOffering",
        "VPC.OFFERING.CREATE",
        "creating VPC offering",
    ),
    (
        "createVlanIpRange",
        "VLAN.IP.RANGE.CREATE",
        "creating VLAN IP range",
    ),
    (
        "createVpnConnection",
        "VPN.S2S.CONNECTION.CREATE",
        "creating site-to-site VPN connection",
    ),
    (
        "createVpnCustomerGateway",
        "VPN.S2S.CUSTOMER.GATEWAY.CREATE",
        "creating site-to-site VPN customer gateway",
    ),
    (
        "createVpnGateway",
        "VPN.S2S.VPN.GATEWAY.CREATE",
        "creating site-to-site VPN gateway",
    ),
    ("createZone", "ZONE.CREATE", "creating zone"),
    ("deleteAccount", "ACCOUNT.DELETE", "deleting account"),
    ("deleteDomain", "DOMAIN.DELETE", "deleting domain"),
    (
        "deleteFirewallRule",
        "FIREWALL.CLOSE",
        "deleting firewall rule",
    ),
    (
        "deleteLBStickinessPolicy",
        "LB.STICKINESSPOLICY.DELETE",
        "deleting load balancer stickiness policy",
    ),
    (
        "deleteLoadBalancerRule",
        "LB.DELETE",
        "deleting load balancer",
    ),
    ("deleteNetwork", "NETWORK.DELETE", "deleting network"),
    (
        "deleteNetworkACL",
        "NETWORK.ACL.ITEM.DELETE",
        "deleting network ACL item",
    ),
    (
        "deleteNetworkACLList",
        "NETWORK.ACL.DELETE",
        "deleting network ACL list",
    ),
    (
        "deleteNetworkOffering",
        "NETWORK.OFFERING.DELETE",
        "deleting network offering",
    ),
    (
        "deletePhysicalNetwork",
        "PHYSICAL.NETWORK.DELETE",
        "deleting physical network",
    ),
    (
        "deletePortForwardingRule",
        "NET.RULEDELETE",
        "deleting port forwarding rule",
    ),
    (
        "deletePrivateGateway",
        "PRIVATE.GATEWAY.DELETE",
        "deleting private gateway",
    ),
    (
        "deleteServiceOffering",
        "SERVICE.OFFERING.DELETE",
        "deleting service offering",
    ),
    (
        "deleteStaticRoute",
        "STATIC.ROUTE.DELETE",
        "deleting static route",
    ),
    ("deleteTags", "DELETE_TAGS", "deleting tags"),
    ("deleteUser", "USER.DELETE", "deleting user"),
    ("deleteVPC", "VPC.DELETE", "deleting VPC"),
    (
        "deleteVPCOffering",
        "VPC.OFFERING.DELETE",
        "deleting VPC offering",
    ),
    (
        "deleteVlanIpRange",
        "VLAN.IP.RANGE.DELETE",
        "deleting VLAN IP range",
    ),
    (
        "deleteVpnConnection",
        "VPN.S2S.CONNECTION.DELETE",
        "deleting site-to-site VPN connection",
    ),
    (
        "deleteVpnCustomerGateway",
        "VPN.S2S.CUSTOMER.GATEWAY.DELETE",
        "deleting site-to-site VPN customer gateway",
    ),
    (
        "deleteVpnGateway",
        "VPN.S2S.VPN.GATEWAY.DELETE",
        "deleting site-to-site VPN gateway",
    ),
    ("deleteZone", "ZONE.DELETE", "deleting zone"),
    ("deployVirtualMachine", "VM.CREATE", "deploying VM"),
    ("destroyRouter", "ROUTER.DESTROY", "destroying router"),
    ("destroyVirtualMachine", "VM.DESTROY", "destroying VM"),
    ("disableAccount", "ACCOUNT.DISABLE", "disabling account"),
    (
        "disableStaticNat",
        "STATICNAT.DISABLE",
        "disabling static NAT",
    ),
    ("disableUser", "USER.DISABLE", "disabling user"),
    (
        "disassociateIpAddress",
        "NET.IPRELEASE",
        "disassociating IP address",
    ),
    ("enableAccount", "ACCOUNT.ENABLE", "enabling account"),
    ("enableStaticNat", "STATICNAT.ENABLE", "enabling static NAT"),
    ("enableUser", "USER.ENABLE", "enabling user"),
    ("lockUser", "USER.LOCK", "locking user"),
    ("rebootRouter", "ROUTER.REBOOT", "rebooting router"),
    // The host monitor's job for each router of a lost host (no command).
    (
        "haRestartRouter",
        "ROUTER.HA",
        "restarting router on another host after its host was lost",
    ),
    (
        "haStartVirtualMachine",
        "VM.START",
        "starting VM on another host after its host was lost",
    ),
    ("rebootVirtualMachine", "VM.REBOOT", "rebooting VM"),
    (
        "registerSSHKeyPair",
        "REGISTER.SSH.KEYPAIR",
        "registering SSH key pair",
    ),
    (
        "registerUserData",
        "REGISTER.USER.DATA",
        "registering user data",
    ),
    (
        "registerUserKeys",
        "REGISTER.USER.KEY",
        "registering user API keys",
    ),
    (
        "removeFromLoadBalancerRule",
        "LB.REMOVE.FROM.RULE",
        "removing from load balancer",
    ),
    (
        "replaceNetworkACLList",
        "NETWORK.ACL.REPLACE",
        "replacing network ACL list",
    ),
    (
        "resetPasswordForVirtualMachine",
        "VM.RESETPASSWORD",
        "resetting VM password",
    ),
    (
        "resetSSHKeyForVirtualMachine",
        "VM.RESETSSHKEY",
        "resetting SSH key of VM",
    ),
    (
        "resetVpnConnection",
        "VPN.S2S.CONNECTION.RESET",
        "resetting site-to-site VPN connection",
    ),
    ("restartNetwork", "NETWORK.RESTART", "restarting network"),
    ("restartVPC", "VPC.RESTART", "restarting VPC"),
    ("startRouter", "ROUTER.START", "starting router"),
    ("startVirtualMachine", "VM.START", "starting VM"),
    ("stopRouter", "ROUTER.STOP", "stopping router"),
    ("stopVirtualMachine", "VM.STOP", "stopping VM"),
    ("updateAccount", "ACCOUNT.UPDATE", "updating account"),
    (
        "updateConfiguration",
        "CONFIGURATION.VALUE.EDIT",
        "updating configuration",
    ),
    (
        "updateLoadBalancerRule",
        "LB.UPDATE",
        "updating load balancer rule",
    ),
    ("updateNetwork", "NETWORK.UPDATE", "updating network"),
    (
        "updateNetworkACLItem",
        "NETWORK.ACL.ITEM.UPDATE",
        "updating network ACL item",
    ),
    (
        "updateNetworkACLList",
        "NETWORK.ACL.UPDATE",
        "updating network ACL list",
    ),
    (
        "updateNetworkOffering",
        "NETWORK.OFFERING.EDIT",
        "updating network offering",
    ),
    (
        "updatePhysicalNetwork",
        "PHYSICAL.NETWORK.UPDATE",
        "updating physical network",
    ),
    (
        "updatePortForwardingRule",
        "NET.RULEMODIFY",
        "updating port forwarding rule",
    ),
    (
        "updateServiceOffering",
        "SERVICE.OFFERING.EDIT",
        "updating service offering",
    ),
    ("updateUser", "USER.UPDATE", "updating user"),
    ("updateVPC", "VPC.UPDATE", "updating VPC"),
    (
        "updateVPCOffering",
        "VPC.OFFERING.UPDATE",
        "updating VPC offering",
    ),
    ("updateVirtualMachine", "VM.UPDATE", "updating VM"),
    ("updateZone", "ZONE.EDIT", "updating zone"),
];

/// The (type, description) of the event command `name` leaves, if any.
pub fn event_of(name: &str) -> Option<(&'static str, &'static str)> {
    EVENTS
        .iter()
        .find(|(command, _, _)| *command == name)
        .map(|&(_, kind, description)| (kind, description))
}

/// Every event type this cloud records, sorted, once each.
pub fn recorded_types() -> Vec<&'static str> {
    let mut all: Vec<&'static str> = EVENTS.iter().map(|&(_, kind, _)| kind).collect();
    all.push(USER_LOGIN);
    all.sort_unstable();
    all.dedup();
    all
}

/// The description of an event in `state` for an action described as
/// `what`, with `ok` telling how it ended, worded as CloudStack's
/// interceptor words it.
pub fn describe(state: &str, what: &str, ok: bool) -> String {
    match (state, ok) {
        (event::STATE_CREATED, true) => format!("Successfully created entity for {what}"),
        (event::STATE_CREATED, false) => format!("Error while creating entity for {what}"),
        (event::STATE_COMPLETED, true) => format!("Successfully completed {what}"),
        (event::STATE_COMPLETED, false) => format!("Error while {what}"),
        (event::STATE_STARTED, _) => capitalized(what),
        _ => what.to_string(),
    }
}

fn capitalized(s: &str) -> String {
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// One event to write: who acted, on what, and how it went.
#[derive(Debug, Clone)]
pub struct Action<'a> {
    pub event_type: &'a str,
    pub what: &'a str,
    pub user_id: i64,
    pub account_id: i64,
    pub resource: Option<(&'a str, String)>,
}

/// Writes the event of `action` in `state` (`ok`: how it ended), through
/// `ex` (the transaction of the change when there is one); returns its id.
pub async fn record<'a>(
    ex: impl Into<Exec<'a>>,
    action: &Action<'_>,
    state: &str,
    ok: bool,
    start_id: i64,
) -> Result<i64> {
    let description = describe(state, action.what, ok);
    let level = if ok {
        event::LEVEL_INFO
    } else {
        event::LEVEL_ERROR
    };
    event::insert(
        ex,
        &event::NewEvent {
            event_type: action.event_type,
            state,
            level,
            description: &description,
            user_id: action.user_id,
            account_id: action.account_id,
            resource_type: action.resource.as_ref().map(|(t, _)| *t),
            resource_uuid: action.resource.as_ref().map(|(_, id)| id.clone()),
            start_id,
        },
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_named_once_and_every_type_upper_case_dotted() {
        let mut names: Vec<&str> = EVENTS.iter().map(|e| e.0).collect();
        let before = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), before, "a command is listed twice");
        for (_, kind, _) in EVENTS {
            assert!(
                kind.chars()
                    .all(|c| c.is_ascii_uppercase() || c == '.' || c == '_' || c.is_ascii_digit()),
                "{kind}"
            );
        }
    }

    #[test]
    fn descriptions_read_as_cloudstacks_interceptor_writes_them() {
        assert_eq!(
            describe(event::STATE_COMPLETED, "creating VPC", true),
            "Successfully completed creating VPC"
        );
        assert_eq!(
            describe(event::STATE_COMPLETED, "creating VPC", false),
            "Error while creating VPC"
        );
        assert_eq!(
            describe(event::STATE_CREATED, "creating VPC", true),
            "Successfully created entity for creating VPC"
        );
        assert_eq!(
            describe(event::STATE_STARTED, "restarting VPC", true),
            "Restarting VPC"
        );
        assert_eq!(
            describe(event::STATE_SCHEDULED, "restarting VPC", true),
            "restarting VPC"
        );
    }

    #[test]
    fn commands_map_to_cloudstack_event_types() {
        assert_eq!(event_of("createVPC").map(|e| e.0), Some("VPC.CREATE"));
        assert_eq!(
            event_of("createPortForwardingRule").map(|e| e.0),
            Some("NET.RULEADD")
        );
        assert_eq!(
            event_of("createNetworkACL").map(|e| e.0),
            Some("NETWORK.ACL.ITEM.CREATE")
        );
        assert_eq!(event_of("listVPCs"), None);
        assert!(recorded_types().contains(&"USER.LOGIN"));
    }
}
