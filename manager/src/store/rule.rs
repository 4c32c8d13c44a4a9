//! Rules on public addresses (CloudStack table `firewall_rules`): port forwarding,
//! static NAT and load balancing, plus the load balancers' own rows
//! (`load_balancing_rules`) and members (`load_balancer_vm_map`).
//!
//! Kept whole because a load balancer is a rule plus its `load_balancing_rules` row and members,
//! written with the rule.

use sqlx::FromRow;

use super::Scope;
use super::query::Where;
use super::table::Table;
use super::text::{Stored, StoredOpt};
use super::{Exec, Listed, OrNotFound, Page, Result, atomically, new_uuid, now_ms};
use std::net::Ipv4Addr;
use uuid::Uuid;

crate::text_enum! {
    /// A rule's purpose (column `purpose`).
    pub enum Purpose {
        /// `purpose` of a port-forwarding rule.
        PortForwarding = "PortForwarding",
        /// `purpose` of a static NAT rule.
        StaticNat = "StaticNat",
        /// `purpose` of a load-balancing rule.
        LoadBalancing = "LoadBalancing",
    }
}

/// `purpose` of a port-forwarding rule.
pub const PURPOSE_PORT_FORWARDING: Purpose = Purpose::PortForwarding;
/// `purpose` of a static NAT rule.
pub const PURPOSE_STATIC_NAT: Purpose = Purpose::StaticNat;
/// `purpose` of a load-balancing rule.
pub const PURPOSE_LOAD_BALANCING: Purpose = Purpose::LoadBalancing;

crate::text_enum! {
    /// A rule's state (column `state`).
    pub enum State {
        /// Written but not yet due on the router (CloudStack's Staged).
        Staged = "Staged",
        /// A rule waiting to be pushed to the router (the initial state).
        Add = "Add",
        /// A rule the router applies.
        Active = "Active",
        /// A rule waiting to be withdrawn (set by [`remove`]).
        Revoke = "Revoke",
    }
}

/// Written but not yet due on the router.
pub const STATE_STAGED: State = State::Staged;
/// A rule waiting to be pushed to the router (the initial state).
pub const STATE_ADD: State = State::Add;
/// A rule the router applies.
pub const STATE_ACTIVE: State = State::Active;
/// A rule waiting to be withdrawn (set by [`remove`]).
pub const STATE_REVOKE: State = State::Revoke;

/// A `firewall_rules` row, with the path of its domain.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct Rule {
    /// Internal key.
    pub id: i64,
    /// API id.
    #[sqlx(try_from = "Stored")]
    pub uuid: Uuid,
    /// The public address (`user_ip_address.id`).
    pub ip_address_id: i64,
    /// The tier the traffic goes to.
    pub network_id: i64,
    /// One of the `PURPOSE_*` values.
    #[sqlx(try_from = "String")]
    pub purpose: Purpose,
    /// `tcp`, `udp`, `all` ...
    pub protocol: String,
    /// First public port.
    pub start_port: Option<i64>,
    /// Last public port.
    pub end_port: Option<i64>,
    /// Destination (private) address.
    #[sqlx(try_from = "StoredOpt")]
    pub dest_ip: Option<Ipv4Addr>,
    /// First private port.
    pub dest_start_port: Option<i64>,
    /// Last private port.
    pub dest_end_port: Option<i64>,
    /// Comma-separated source CIDRs.
    pub source_cidrs: Option<String>,
    /// One of the `STATE_*` values.
    #[sqlx(try_from = "String")]
    pub state: State,
    /// The owner.
    pub account_id: i64,
    /// The owner's domain.
    pub domain_id: i64,
    /// The owning domain's path.
    pub domain_path: String,
    /// Creation time (epoch ms).
    pub created: i64,
    /// Removal time (epoch ms), if removed.
    pub removed: Option<i64>,
    /// The VM a port-forwarding rule forwards to (set by [`set_vm`]).
    pub vm_id: Option<i64>,
}

/// A rule to create (state Add).
#[derive(Clone, Debug, Default)]
pub struct NewRule {
    /// The public address.
    pub ip_address_id: i64,
    /// The tier.
    pub network_id: i64,
    /// Purpose.
    pub purpose: String,
    /// Protocol.
    pub protocol: String,
    /// First public port.
    pub start_port: Option<i64>,
    /// Last public port.
    pub end_port: Option<i64>,
    /// Destination address.
    pub dest_ip: Option<String>,
    /// First private port.
    pub dest_start_port: Option<i64>,
    /// Last private port.
    pub dest_end_port: Option<i64>,
    /// Source CIDRs (joined with commas when stored).
    pub source_cidrs: Vec<String>,
    /// The owner.
    pub account_id: i64,
    /// The owner's domain.
    pub domain_id: i64,
}

/// Filters of a rule list; every set field must match.
#[derive(Clone, Debug, Default)]
pub struct RuleFilter {
    /// Only this rule (internal id).
    pub id: Option<i64>,
    /// Only these rules (API ids).
    pub uuids: Option<Vec<Uuid>>,
    /// Only rules on this public address.
    pub ip_address_id: Option<i64>,
    /// Only rules towards this tier.
    pub network_id: Option<i64>,
    /// Only rules of tiers of this VPC.
    pub vpc_id: Option<i64>,
    /// Only this purpose.
    pub purpose: Option<String>,
    /// Only this state.
    pub state: Option<String>,
    /// Only rows of these owners.
    pub scope: Scope,
    /// Only rules forwarding to this VM.
    pub vm_id: Option<i64>,
}

/// A load balancer: its `load_balancing_rules` row.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct LoadBalancer {
    /// The `firewall_rules` id it extends.
    pub id: i64,
    /// Name.
    pub name: String,
    /// `roundrobin`, `leastconn` or `source`.
    pub algorithm: String,
    /// Port on the members.
    pub private_port: i64,
    /// Port on the public address.
    pub public_port: i64,
}

const COLUMNS: &str = "f.id, f.uuid, f.ip_address_id, f.network_id, f.purpose, f.protocol, \
     f.start_port, f.end_port, f.dest_ip, f.dest_start_port, f.dest_end_port, f.source_cidrs, \
     f.state, f.account_id, f.domain_id, d.path AS domain_path, f.created, f.removed, f.vm_id";
const FROM: &str = "firewall_rules f JOIN domain d ON d.id = f.domain_id";
const TABLE: Table<Rule> = Table::joined("firewall_rules", COLUMNS, FROM, "f.");
const LOAD_BALANCERS: Table<LoadBalancer> = Table::new(
    "load_balancing_rules",
    "id, name, algorithm, private_port, public_port",
);

/// Creates a rule, in state Add.
pub async fn create<'a>(ex: impl Into<Exec<'a>>, new: NewRule) -> Result<Rule> {
    let source_cidrs = (!new.source_cidrs.is_empty()).then(|| new.source_cidrs.join(","));
    let mut ex = ex.into();
    let id: i64 = on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "INSERT INTO firewall_rules (uuid, ip_address_id, network_id, purpose, protocol, \
             start_port, end_port, dest_ip, dest_start_port, dest_end_port, source_cidrs, state, \
             account_id, domain_id, created) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
             $11, 'Add', $12, $13, $14) RETURNING id",
        )
        .bind(new_uuid())
        .bind(new.ip_address_id)
        .bind(new.network_id)
        .bind(&new.purpose)
        .bind(&new.protocol)
        .bind(new.start_port)
        .bind(new.end_port)
        .bind(&new.dest_ip)
        .bind(new.dest_start_port)
        .bind(new.dest_end_port)
        .bind(&source_cidrs)
        .bind(new.account_id)
        .bind(new.domain_id)
        .bind(now_ms())
        .fetch_one(c)
        .await?
    });
    get_by_id(ex, id).await?.or_not_found("rule", id)
}

/// A rule by internal id, removed or not.
pub async fn get_by_id<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<Option<Rule>> {
    TABLE.by_id(ex, id).await
}

/// A rule by UUID, removed or not.
pub async fn get_by_uuid<'a>(ex: impl Into<Exec<'a>>, uuid: Uuid) -> Result<Option<Rule>> {
    TABLE.by_uuid(ex, uuid).await
}

/// Lists live rules by creation order.
pub async fn list<'a>(
    ex: impl Into<Exec<'a>>,
    filter: &RuleFilter,
    page: Page,
) -> Result<Listed<Rule>> {
    let mut w = Where::new();
    w.push("f.removed IS NULL")
        .eq_opt("f.id", filter.id)
        .eq_opt("f.ip_address_id", filter.ip_address_id)
        .eq_opt("f.network_id", filter.network_id)
        .eq_opt("f.purpose", filter.purpose.clone())
        .eq_opt("f.state", filter.state.clone())
        .scoped("f.", &filter.scope)
        .eq_opt("f.vm_id", filter.vm_id);
    if let Some(vpc_id) = filter.vpc_id {
        let p = w.arg(vpc_id);
        w.push(format!(
            "f.network_id IN (SELECT id FROM networks WHERE vpc_id = {p})"
        ));
    }
    w.any_of_opt("f.uuid", filter.uuids.as_deref());
    TABLE.list(ex, &w, "f.id", page).await
}

/// The live rules on the given addresses in one statement, by address and
/// id (as `list` with `ip_address_id` gives each address's).
pub async fn live_on_ips<'a>(ex: impl Into<Exec<'a>>, ip_ids: &[i64]) -> Result<Vec<Rule>> {
    TABLE
        .live_by_ids(
            ex,
            "f.removed IS NULL",
            "ip_address_id",
            ip_ids,
            "f.ip_address_id, f.id",
        )
        .await
}

/// Sets the state of a live rule.
pub async fn set_state<'a>(ex: impl Into<Exec<'a>>, id: i64, state: State) -> Result<bool> {
    TABLE.set_state(ex, id, state.as_str()).await
}

/// Marks every live rule `filter` selects removed (as [`remove`]); how many.
pub async fn remove_all<'a>(ex: impl Into<Exec<'a>>, filter: &RuleFilter) -> Result<usize> {
    let mut ex = ex.into();
    let rules = list(ex.reborrow(), filter, Page::ALL).await?.items;
    for r in &rules {
        remove(ex.reborrow(), r.id).await?;
    }
    Ok(rules.len())
}

/// Marks a live rule removed (state Revoke); a load balancer's members go with it.
pub async fn remove<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<bool> {
    atomically(ex.into(), move |tx| {
        Box::pin(async move {
            let mut ex = Exec::Tx(tx);
            on_db!(&mut ex, c => {
                sqlx::query("DELETE FROM load_balancer_vm_map WHERE load_balancer_id = $1")
                    .bind(id)
                    .execute(c)
                    .await?;
            });
            TABLE.soft_delete(ex, id, "Revoke").await
        })
    })
    .await
}

/// Creates a load balancer: its rule (purpose LoadBalancing, public port range
/// `public_port`) and its `load_balancing_rules` row, atomically.
pub async fn create_load_balancer<'a>(
    ex: impl Into<Exec<'a>>,
    new: NewRule,
    name: &str,
    algorithm: &str,
    public_port: i64,
    private_port: i64,
) -> Result<(Rule, LoadBalancer)> {
    let name = name.to_string();
    let algorithm = algorithm.to_string();
    atomically(ex.into(), move |tx| {
        Box::pin(async move {
            let mut ex = Exec::Tx(tx);
            let rule = create(
                ex.reborrow(),
                NewRule {
                    purpose: PURPOSE_LOAD_BALANCING.to_string(),
                    start_port: Some(public_port),
                    end_port: Some(public_port),
                    dest_start_port: Some(private_port),
                    dest_end_port: Some(private_port),
                    ..new
                },
            )
            .await?;
            on_db!(&mut ex, c => {
                sqlx::query(
                    "INSERT INTO load_balancing_rules (id, name, algorithm, private_port, \
                     public_port) VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(rule.id)
                .bind(&name)
                .bind(&algorithm)
                .bind(private_port)
                .bind(public_port)
                .execute(c)
                .await?;
            });
            let lb = load_balancer(ex, rule.id)
                .await?
                .or_not_found("load balancer", rule.id)?;
            Ok((rule, lb))
        })
    })
    .await
}

/// The load balancer of a rule, if it is one.
pub async fn load_balancer<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<Option<LoadBalancer>> {
    LOAD_BALANCERS.by_id(ex, id).await
}

/// Load balancers by rule id in one statement (list views).
pub async fn load_balancers<'a>(ex: impl Into<Exec<'a>>, ids: &[i64]) -> Result<Vec<LoadBalancer>> {
    LOAD_BALANCERS.by_ids(ex, ids).await
}

/// Changes a load balancer's name and/or algorithm (`None` leaves a field as is).
pub async fn update_load_balancer<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
    name: Option<&str>,
    algorithm: Option<&str>,
) -> Result<bool> {
    let mut ex = ex.into();
    let done = on_db!(&mut ex, c => {
        sqlx::query(
            "UPDATE load_balancing_rules SET name = COALESCE($2, name), \
             algorithm = COALESCE($3, algorithm) WHERE id = $1",
        )
        .bind(id)
        .bind(name)
        .bind(algorithm)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(done == 1)
}

/// Adds a member (a VM NIC address) to a load balancer; false when it already is one.
pub async fn add_member<'a>(ex: impl Into<Exec<'a>>, lb_id: i64, ip: &str) -> Result<bool> {
    let mut ex = ex.into();
    let done = on_db!(&mut ex, c => {
        sqlx::query(
            "INSERT INTO load_balancer_vm_map (load_balancer_id, instance_ip, created) \
             VALUES ($1, $2, $3) ON CONFLICT (load_balancer_id, instance_ip) DO NOTHING",
        )
        .bind(lb_id)
        .bind(ip)
        .bind(now_ms())
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(done == 1)
}

/// Removes a member from a load balancer; false when it was none.
pub async fn remove_member<'a>(ex: impl Into<Exec<'a>>, lb_id: i64, ip: &str) -> Result<bool> {
    let mut ex = ex.into();
    let done = on_db!(&mut ex, c => {
        sqlx::query(
            "DELETE FROM load_balancer_vm_map WHERE load_balancer_id = $1 AND instance_ip = $2",
        )
        .bind(lb_id)
        .bind(ip)
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(done == 1)
}

/// The member addresses of a load balancer, in the order they were added.
pub async fn members<'a>(ex: impl Into<Exec<'a>>, lb_id: i64) -> Result<Vec<String>> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "SELECT instance_ip FROM load_balancer_vm_map WHERE load_balancer_id = $1 ORDER BY id",
        )
        .bind(lb_id)
        .fetch_all(c)
        .await?
    }))
}

/// Sets the VM a rule forwards to.
pub async fn set_vm<'a>(ex: impl Into<Exec<'a>>, id: i64, vm_id: Option<i64>) -> Result<bool> {
    TABLE.set_live(ex, id, &[("vm_id", vm_id.into())]).await
}

/// Changes where a live rule forwards to: the destination address, the private
/// port range and the VM.
pub async fn set_destination<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
    dest_ip: &str,
    dest_start_port: i64,
    dest_end_port: i64,
    vm_id: Option<i64>,
) -> Result<bool> {
    let values = [
        ("dest_ip", dest_ip.into()),
        ("dest_start_port", dest_start_port.into()),
        ("dest_end_port", dest_end_port.into()),
        ("vm_id", vm_id.into()),
    ];
    TABLE.set_live(ex, id, &values).await
}

/// A member of a load balancer: a VM NIC address and the VM.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct Member {
    /// The member's address.
    #[sqlx(try_from = "Stored")]
    pub instance_ip: Ipv4Addr,
    /// The VM holding it.
    pub vm_id: Option<i64>,
}

/// Adds a VM's address to a load balancer; false when it already is a member.
pub async fn add_vm_member<'a>(
    ex: impl Into<Exec<'a>>,
    lb_id: i64,
    ip: &str,
    vm_id: i64,
) -> Result<bool> {
    let mut ex = ex.into();
    let done = on_db!(&mut ex, c => {
        sqlx::query(
            "INSERT INTO load_balancer_vm_map (load_balancer_id, instance_ip, vm_id, created) \
             VALUES ($1, $2, $3, $4) ON CONFLICT (load_balancer_id, instance_ip) DO NOTHING",
        )
        .bind(lb_id)
        .bind(ip)
        .bind(vm_id)
        .bind(now_ms())
        .execute(c)
        .await?
        .rows_affected()
    });
    Ok(done == 1)
}

/// The members of a load balancer with their VMs, in the order they were added.
pub async fn members_with_vms<'a>(ex: impl Into<Exec<'a>>, lb_id: i64) -> Result<Vec<Member>> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_as(
            "SELECT instance_ip, vm_id FROM load_balancer_vm_map WHERE load_balancer_id = $1 \
             ORDER BY id",
        )
        .bind(lb_id)
        .fetch_all(c)
        .await?
    }))
}
