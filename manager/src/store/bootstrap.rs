//! Built-in rows: the ROOT domain, the `system` account, configuration keys, the
//! default VPC offering and the VPC tier offerings; and the `admin` account.
//!
//! Everything here is idempotent and safe when several managers start at once on one
//! PostgreSQL database: inserts go through unique indexes (`ON CONFLICT DO NOTHING`,
//! or a retry after a duplicate), never through "check, then insert" alone.

use std::net::Ipv4Addr;

use super::offering::{
    self, NewNetworkOffering, NewVpcOffering, PROVIDER_VPC_VIRTUAL_ROUTER, STATE_ENABLED,
    ServiceProvider,
};
use super::secret::SecretBox;
use super::{
    Db, Exec, OrNotFound, Result, StoreError, account, config, domain, new_uuid, now_ms, user,
};

/// Name of the account (and user) that background work such as VPC clean-up runs as.
pub const SYSTEM_ACCOUNT: &str = "system";
/// Name of the administrator account and user made by [`ensure_admin`].
pub const ADMIN_ACCOUNT: &str = "admin";
/// Unique name of the built-in default VPC offering.
pub const DEFAULT_VPC_OFFERING: &str = "Default VPC offering";
/// Unique name of the built-in VPC tier offering.
pub const DEFAULT_VPC_TIER_OFFERING: &str = "DefaultIsolatedNetworkOfferingForVpcNetworks";
/// Unique name of the built-in VPC tier offering without load balancing.
pub const DEFAULT_VPC_TIER_OFFERING_NO_LB: &str =
    "DefaultIsolatedNetworkOfferingForVpcNetworksNoLB";

/// The services a VPC virtual router gives, in CloudStack's spelling (the
/// built-in VPC offerings give them all).
pub const VPC_SERVICES: &[&str] = &[
    "Dhcp",
    "Dns",
    "SourceNat",
    "PortForwarding",
    "Lb",
    "UserData",
    "StaticNat",
    "NetworkACL",
    "Vpn",
    // CloudStack adds Gateway with the SourceNat provider to every VPC offering;
    // VPC responses leave it out of their service list (reference §2.2, §2.3).
    "Gateway",
];
pub const TIER_SERVICES: &[&str] = &[
    "Dhcp",
    "Dns",
    "UserData",
    "SourceNat",
    "StaticNat",
    "PortForwarding",
    "Lb",
    "NetworkACL",
    "Vpn",
];

fn by_router(services: &[&str]) -> Vec<ServiceProvider> {
    services
        .iter()
        .map(|s| ServiceProvider::new(s, PROVIDER_VPC_VIRTUAL_ROUTER))
        .collect()
}

/// Inserts the built-in rows that are missing. [`Db::connect`] runs it.
pub async fn seed(db: &Db) -> Result<()> {
    let mut ex = Exec::Db(db);
    on_db!(&mut ex, c => {
        sqlx::query(
            "INSERT INTO domain (uuid, parent_id, name, path, level, created) \
             VALUES ($1, NULL, $2, $3, 0, $4) ON CONFLICT (path) WHERE removed IS NULL DO NOTHING",
        )
        .bind(new_uuid())
        .bind(domain::ROOT_NAME)
        .bind(domain::ROOT_PATH)
        .bind(now_ms())
        .execute(c)
        .await?;
    });
    let root = domain::root(db).await?;
    if account::get_by_name(db, root.id, SYSTEM_ACCOUNT)
        .await?
        .is_none()
    {
        ignore_duplicate(
            account::create(
                db,
                account::NewAccount {
                    account_name: SYSTEM_ACCOUNT.into(),
                    account_type: account::TYPE_ADMIN,
                    domain_id: root.id,
                    network_domain: None,
                },
            )
            .await,
        )?;
    }
    let system = account::get_by_name(db, root.id, SYSTEM_ACCOUNT)
        .await?
        .or_not_found("account", SYSTEM_ACCOUNT)?;
    if user::get_by_username(db, root.id, SYSTEM_ACCOUNT)
        .await?
        .is_none()
    {
        ignore_duplicate(
            user::create(
                db,
                user::NewUser {
                    account_id: system.id,
                    username: SYSTEM_ACCOUNT.into(),
                    firstname: "system".into(),
                    lastname: "cloud".into(),
                    ..user::NewUser::default()
                },
            )
            .await,
        )?;
    }
    config::seed(db).await?;
    config::seed_cloud_identifier(db).await?;
    seed_offerings(db).await
}

async fn seed_offerings(db: &Db) -> Result<()> {
    if offering::vpc_offering_by_unique_name(db, DEFAULT_VPC_OFFERING)
        .await?
        .is_none()
    {
        ignore_duplicate(
            offering::create_vpc_offering(
                db,
                NewVpcOffering {
                    name: DEFAULT_VPC_OFFERING.into(),
                    unique_name: Some(DEFAULT_VPC_OFFERING.into()),
                    display_text: DEFAULT_VPC_OFFERING.into(),
                    state: STATE_ENABLED.into(),
                    is_default: true,
                    distributed_router: false,
                    redundant_router: false,
                    network_mode: "NATTED".into(),
                    internet_protocol: "ipv4".into(),
                    services: by_router(VPC_SERVICES),
                },
            )
            .await,
        )?;
    }
    let tiers = [
        (
            DEFAULT_VPC_TIER_OFFERING,
            "Offering for Isolated VPC networks with Source NAT service enabled",
            TIER_SERVICES.to_vec(),
        ),
        (
            DEFAULT_VPC_TIER_OFFERING_NO_LB,
            "Offering for Isolated VPC networks with Source NAT service enabled and LB service disabled",
            TIER_SERVICES
                .iter()
                .copied()
                .filter(|s| *s != "Lb")
                .collect(),
        ),
    ];
    for (name, text, services) in tiers {
        if offering::network_offering_by_unique_name(db, name)
            .await?
            .is_some()
        {
            continue;
        }
        ignore_duplicate(
            offering::create_network_offering(
                db,
                NewNetworkOffering {
                    name: name.into(),
                    unique_name: Some(name.into()),
                    display_text: text.into(),
                    state: STATE_ENABLED.into(),
                    is_default: true,
                    for_vpc: true,
                    is_persistent: false,
                    services: by_router(&services),
                },
            )
            .await,
        )?;
    }
    Ok(())
}

/// Another manager inserted the same built-in row first: that is success too.
fn ignore_duplicate<T>(result: Result<T>) -> Result<()> {
    match result {
        Ok(_) | Err(StoreError::Duplicate(_)) => Ok(()),
        Err(err) => Err(err),
    }
}

/// The `system` user and its account (user id, account id): who the jobs
/// the manager queues for itself (a lost host's routers) belong to.
pub async fn system_user(db: &Db) -> Result<(i64, i64)> {
    let root = domain::root(db).await?;
    let u = user::get_by_username(db, root.id, SYSTEM_ACCOUNT)
        .await?
        .or_not_found("user", SYSTEM_ACCOUNT)?;
    Ok((u.id, u.account_id))
}

/// Makes sure the `admin` account (root admin, in ROOT) and its `admin` user exist and
/// that the user has API keys; returns `(api_key, secret_key)` for cloudstack.ini.
/// Running it again returns the same keys. The user gets no password (use
/// `user::set_password` for `login`).
pub async fn ensure_admin(db: &Db, secrets: &SecretBox) -> Result<(String, String)> {
    // Two managers starting together may both try to create the admin: the loser sees
    // a duplicate and simply reads what the winner wrote.
    let mut attempt = 0;
    loop {
        attempt += 1;
        match try_ensure_admin(db, secrets).await {
            Err(StoreError::Duplicate(_)) if attempt < 3 => continue,
            other => return other,
        }
    }
}

async fn try_ensure_admin(db: &Db, secrets: &SecretBox) -> Result<(String, String)> {
    let mut tx = db.begin().await?;
    let root = domain::root(&mut tx).await?;
    let admin = match account::get_by_name(&mut tx, root.id, ADMIN_ACCOUNT).await? {
        Some(a) => a,
        None => {
            account::create(
                &mut tx,
                account::NewAccount {
                    account_name: ADMIN_ACCOUNT.into(),
                    account_type: account::TYPE_ADMIN,
                    domain_id: root.id,
                    network_domain: None,
                },
            )
            .await?
        }
    };
    let user = match user::get_by_username(&mut tx, root.id, ADMIN_ACCOUNT).await? {
        Some(u) => u,
        None => {
            user::create(
                &mut tx,
                user::NewUser {
                    account_id: admin.id,
                    username: ADMIN_ACCOUNT.into(),
                    firstname: "Admin".into(),
                    lastname: "User".into(),
                    ..user::NewUser::default()
                },
            )
            .await?
        }
    };
    let keys = match (user.api_key, user.secret_key) {
        (Some(api), Some(secret)) => {
            let secret = secrets
                .open(&secret)
                .map_err(|e| StoreError::Conflict(e.to_string()))?;
            (api, secret)
        }
        _ => user::register_keys(&mut tx, user.id, secrets).await?,
    };
    tx.commit().await?;
    Ok(keys)
}

/// The zone a fresh installation gets (`vpc-manager serve --bootstrap-zone`),
/// so the system works at once: an Advanced zone `zone1`, a physical network
/// `physnet1` carrying Guest (VLANs 100-999) and Public traffic, and a public
/// range in the documentation prefix 203.0.113.0/24 (gateway .1, addresses
/// .10-.250). Nothing happens when a zone exists already. Returns whether it
/// created the zone.
pub async fn first_zone(db: &Db) -> Result<bool> {
    if !super::zone::list(db, &super::zone::ZoneFilter::default(), super::Page::ALL)
        .await?
        .items
        .is_empty()
    {
        return Ok(false);
    }
    let mut tx = db.begin().await?;
    let zone = super::zone::create(
        &mut tx,
        super::zone::NewZone {
            name: "zone1".into(),
            description: Some("Created at the first start".into()),
            dns1: Some("203.0.113.1".into()),
            internal_dns1: Some("203.0.113.1".into()),
            ..Default::default()
        },
    )
    .await?;
    let physnet = super::zone::create_physical_network(
        &mut tx,
        zone.id,
        "physnet1",
        "VLAN",
        Some("100-999"),
        &[("Guest", None), ("Public", None)],
    )
    .await?;
    super::vlan::create_range(
        &mut tx,
        super::vlan::NewVlanRange {
            zone_id: zone.id,
            physical_network_id: Some(physnet.id),
            vlan_id: "vlan://untagged".into(),
            gateway: Ipv4Addr::new(203, 0, 113, 1),
            netmask: Ipv4Addr::new(255, 255, 255, 0),
            start_ip: Ipv4Addr::new(203, 0, 113, 10),
            end_ip: Ipv4Addr::new(203, 0, 113, 250),
        },
    )
    .await?;
    tx.commit().await?;
    Ok(true)
}
