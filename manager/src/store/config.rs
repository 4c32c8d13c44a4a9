//! Global configuration (CloudStack table `configuration`, reference/cloudstack.md §3.9).
//!
//! Every key the manager reads is declared in [`DEFAULTS`]; [`seed`] inserts the
//! missing ones at start-up and refreshes their defaults and descriptions, but never
//! touches a value an administrator set. A row's `value` is NULL until set, so the
//! effective value is `value`, else `default_value` (see [`Config::effective`]).

use sqlx::FromRow;

use super::query::{self, Where};
use super::{Exec, Listed, Page, Result, now_ms};

/// A configuration key the manager knows, with its default.
#[derive(Clone, Copy, Debug)]
pub struct ConfigDef {
    /// Key, e.g. `vpc.max.networks`.
    pub name: &'static str,
    /// CloudStack's category (`Network`, `Account Defaults` …).
    pub category: &'static str,
    /// Default value as text.
    pub default: &'static str,
    /// `Global` or `Zone` (where CloudStack also accepts a per-zone value).
    pub scope: &'static str,
    /// One-line description shown by listConfigurations.
    pub description: &'static str,
    /// Whether a change takes effect without a restart.
    pub is_dynamic: bool,
}

const fn def(
    name: &'static str,
    category: &'static str,
    default: &'static str,
    scope: &'static str,
    is_dynamic: bool,
    description: &'static str,
) -> ConfigDef {
    ConfigDef {
        name,
        category,
        default,
        scope,
        description,
        is_dynamic,
    }
}

/// The keys the manager reads and their CloudStack defaults.
#[rustfmt::skip]
pub const DEFAULTS: &[ConfigDef] = &[
    def("vpc.max.networks", "Network", "3", "Global", false,
        "Maximum number of tiers (guest networks) in one VPC"),
    def("vpc.cleanup.interval", "Advanced", "3600", "Global", false,
        "Seconds between runs of the clean-up of Inactive VPCs"),
    def("cluster.heartbeat.interval", "management-server", "1500", "Global", true,
        "Milliseconds between the heartbeats each manager writes to the database"),
    // CloudStack's default is 150000; jobs and routers of a silent manager are
    // taken over once it counts as Down, so this waits 15 s, not 150.
    def("cluster.heartbeat.threshold", "management-server", "15000", "Global", true,
        "Milliseconds without a heartbeat after which a manager counts as Down"),
    def("max.account.vpcs", "Account Defaults", "20", "Global", true,
        "Default maximum number of VPCs an account may own"),
    def("max.domain.vpcs", "Domain Defaults", "40", "Global", true,
        "Default maximum number of VPCs in a domain"),
    def("max.project.vpcs", "Project Defaults", "20", "Global", true,
        "Default maximum number of VPCs a project may own"),
    def("max.account.networks", "Account Defaults", "20", "Global", true,
        "Default maximum number of guest networks an account may own"),
    def("max.domain.networks", "Domain Defaults", "40", "Global", true,
        "Default maximum number of guest networks in a domain"),
    def("max.account.public.ips", "Account Defaults", "20", "Global", true,
        "Default maximum number of public IP addresses an account may hold"),
    def("max.domain.public.ips", "Domain Defaults", "40", "Global", true,
        "Default maximum number of public IP addresses in a domain"),
    def("max.account.user.vms", "Account Defaults", "20", "Global", true,
        "Default maximum number of VMs an account may own"),
    def("max.domain.user.vms", "Domain Defaults", "40", "Global", true,
        "Default maximum number of VMs in a domain"),
    def("network.gc.interval", "Advanced", "600", "Global", false,
        "Seconds between checks for idle networks to shut down"),
    def("network.gc.wait", "Advanced", "600", "Global", false,
        "Seconds a network must be idle before it is shut down"),
    def("router.check.interval", "Advanced", "5", "Global", true,
        "Seconds between checks of running routers' agents (0 turns the check off)"),
    // CloudStack's names and meaning (ping.timeout multiplies ping.interval),
    // with a host agent checked every 2 s, not 60: a lost host's routers are
    // started elsewhere seconds after, not minutes.
    def("ping.interval", "Advanced", "2", "Global", true,
        "Seconds between the checks of every host agent (Describe) by the host monitor"),
    def("ping.timeout", "Advanced", "2.5", "Global", true,
        "Multiplier to ping.interval before a silent host is investigated and, when its \
         routers are silent too, declared Down"),
    def("network.guest.cidr.limit", "Network", "22", "Global", true,
        "Shortest prefix length a non-root user may give a tier CIDR"),
    def("allow.non.rfc1918.compliant.ips", "Network", "false", "Global", true,
        "Allow VPC and tier CIDRs outside the private (RFC 1918 / RFC 6598) ranges"),
    def("guest.domain.suffix", "Network", "cloud.internal", "Zone", true,
        "Suffix of the default network domain of guest networks"),
    def("denied.routes", "Network", "", "Zone", true,
        "Comma-separated CIDRs that static routes may not overlap"),
    def("vpc.tier.name.prepend", "Network", "false", "Global", true,
        "Prefix tier names with the name of their VPC"),
    def("vpc.tier.name.prepend.delimiter", "Network", " ", "Global", true,
        "Separator between the VPC name and the tier name"),
    def("default.page.size", "Advanced", "500", "Global", true,
        "Rows a list returns without paging, and the largest page size"),
    def("enforce.post.requests.and.timestamps", "Advanced", "false", "Global", true,
        "Accept state-changing commands by POST only, and signed requests only with \
         signatureversion=3 and an expires at most 15 minutes ahead"),
    def("job.expire.minutes", "Advanced", "1440", "Global", true,
        "Minutes a finished async job is kept before it is purged"),
    def("incorrect.login.attempts.allowed", "Advanced", "5", "Global", true,
        "Wrong passwords in a row after which a user is disabled (0 or less: never)"),
    def("api.sessionkey.check.locations", "Advanced", "CookieAndParameter", "Global", true,
        "Where a session key must appear: CookieAndParameter, CookieOrParameter or ParameterOnly"),
    // Not a CloudStack key (it has no bound): 10,000 covers the longest lists
    // seen in practice by far and is half the router agent's own bound
    // (--max-acl-items, 20,000), so the API refuses first, with its own error.
    def("network.acl.max.items", "Network", "10000", "Global", true,
        "Maximum number of items in one network ACL list (createNetworkACL)"),
    def("vm.userdata.max.length", "Advanced", "32768", "Global", true,
        "Max length of vm userdata after base64 encoding. Default is 32768 and maximum is 1048576"),
    def("vm.password.length", "Advanced", "6", "Global", false,
        "Specifies the length of a randomly generated password"),
    def("global.allow.expose.host.hostname", "Advanced", "false", "Global", true,
        "Whether the metadata of VMs (hypervisor-host-name) names the host they run on"),
    // CloudStack generates it at installation; seeded at the first start.
    def("cloud.identifier", "Hidden", "", "Global", false,
        "A unique identifier for the cloud"),
    def("vr.public.interface.max.mtu", "VirtualRouter", "1500", "Zone", true,
        "The maximum value the MTU can have on the VR's public interfaces (createVPC and \
         updateVPC publicmtu)"),
];

/// Keys earlier versions listed although nothing read them (a router per
/// VPC has no rolling restart, extra public NICs, aggregated commands or
/// routed mode here): [`seed`] removes their rows, so
/// listConfigurations shows only settings that act.
pub const RETIRED: &[&str] = &[
    "network.rolling.restart",
    "router.extra.public.nics",
    "router.aggregation.command.each.timeout",
    "routed.network.vpc.enabled",
];

/// The default of a declared key.
pub fn default_of(name: &str) -> Option<&'static str> {
    DEFAULTS.iter().find(|d| d.name == name).map(|d| d.default)
}

/// A `configuration` row.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct Config {
    /// Key.
    pub name: String,
    /// Category.
    pub category: String,
    /// The value set by an administrator; None means the default.
    pub value: Option<String>,
    /// The default value.
    pub default_value: Option<String>,
    /// `Global` or `Zone`.
    pub scope: String,
    /// Description.
    pub description: String,
    /// Component (always `management-server` here).
    pub component: String,
    /// Whether a change applies without a restart.
    pub is_dynamic: bool,
    /// Last update by an administrator (epoch ms).
    pub updated: Option<i64>,
}

impl Config {
    /// The value in force: the set value, else the default.
    pub fn effective(&self) -> Option<&str> {
        self.value.as_deref().or(self.default_value.as_deref())
    }
}

/// Filters of a configuration list; every set field must match.
#[derive(Clone, Debug, Default)]
pub struct ConfigFilter {
    /// Exact key.
    pub name: Option<String>,
    /// Exact category.
    pub category: Option<String>,
    /// Substring of the key, case-insensitive.
    pub keyword: Option<String>,
}

const COLUMNS: &str =
    "name, category, value, default_value, scope, description, component, is_dynamic, updated";

/// Inserts the declared keys that are missing and refreshes the defaults and
/// descriptions of the others (values set by administrators are kept).
pub async fn seed<'a>(ex: impl Into<Exec<'a>>) -> Result<()> {
    let mut ex = ex.into();
    for name in RETIRED {
        on_db!(&mut ex, c => {
            sqlx::query("DELETE FROM configuration WHERE name = $1")
                .bind(name)
                .execute(c)
                .await?;
        });
    }
    for d in DEFAULTS {
        on_db!(&mut ex, c => {
            sqlx::query(
                "INSERT INTO configuration (name, category, value, default_value, scope, \
                 description, component, is_dynamic) \
                 VALUES ($1, $2, NULL, $3, $4, $5, 'management-server', $6) \
                 ON CONFLICT (name) DO UPDATE SET category = excluded.category, \
                 default_value = excluded.default_value, scope = excluded.scope, \
                 description = excluded.description, is_dynamic = excluded.is_dynamic",
            )
            .bind(d.name)
            .bind(d.category)
            .bind(d.default)
            .bind(d.scope)
            .bind(d.description)
            .bind(d.is_dynamic)
            .execute(c)
            .await?;
        });
    }
    Ok(())
}

/// Gives `cloud.identifier` a random UUID when it has no value yet (the
/// metadata's `cloud-identifier` is `CloudStack-{<it>}`); a value once set
/// is kept.
pub async fn seed_cloud_identifier<'a>(ex: impl Into<Exec<'a>>) -> Result<()> {
    let mut ex = ex.into();
    on_db!(&mut ex, c => {
        sqlx::query(
            "UPDATE configuration SET value = $1 WHERE name = 'cloud.identifier' \
             AND (value IS NULL OR value = '')",
        )
        .bind(super::new_uuid())
        .execute(c)
        .await?;
    });
    Ok(())
}

/// One configuration row.
pub async fn get<'a>(ex: impl Into<Exec<'a>>, name: &str) -> Result<Option<Config>> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_as(
            "SELECT name, category, value, default_value, scope, description, component, \
             is_dynamic, updated FROM configuration WHERE name = $1",
        )
        .bind(name)
        .fetch_optional(c)
        .await?
    }))
}

/// The value in force for `name`: the set value, else the stored default, else the
/// declared default; None for an unknown key.
pub async fn value<'a>(ex: impl Into<Exec<'a>>, name: &str) -> Result<Option<String>> {
    Ok(match get(ex, name).await? {
        Some(row) => row.effective().map(str::to_string),
        None => default_of(name).map(str::to_string),
    })
}

/// [`value`] parsed as an integer (None if unknown, empty or not a number).
pub async fn value_i64<'a>(ex: impl Into<Exec<'a>>, name: &str) -> Result<Option<i64>> {
    Ok(value(ex, name)
        .await?
        .and_then(|v| v.trim().parse::<i64>().ok()))
}

/// [`value`] parsed as a boolean (`true`/`false`, any case).
pub async fn value_bool<'a>(ex: impl Into<Exec<'a>>, name: &str) -> Result<Option<bool>> {
    Ok(value(ex, name)
        .await?
        .and_then(|v| v.trim().to_ascii_lowercase().parse::<bool>().ok()))
}

/// Sets a key's value (None resets it to the default); returns the updated row, or
/// None for an unknown key.
pub async fn update<'a>(
    ex: impl Into<Exec<'a>>,
    name: &str,
    value: Option<&str>,
) -> Result<Option<Config>> {
    let mut ex = ex.into();
    Ok(on_db!(&mut ex, c => {
        sqlx::query_as(
            "UPDATE configuration SET value = $2, updated = $3 WHERE name = $1 \
             RETURNING name, category, value, default_value, scope, description, component, \
             is_dynamic, updated",
        )
        .bind(name)
        .bind(value)
        .bind(now_ms())
        .fetch_optional(c)
        .await?
    }))
}

/// Lists configuration rows by name.
pub async fn list<'a>(
    ex: impl Into<Exec<'a>>,
    filter: &ConfigFilter,
    page: Page,
) -> Result<Listed<Config>> {
    let mut w = Where::new();
    w.eq_opt("name", filter.name.clone())
        .eq_opt("category", filter.category.clone())
        .keyword(&["name"], filter.keyword.as_deref());
    query::list(&mut ex.into(), COLUMNS, "configuration", &w, "name", page).await
}
