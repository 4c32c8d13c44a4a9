//! Accounts (CloudStack table `account`): the owners of resources, inside a domain.

use sqlx::FromRow;

use super::query::Where;
use super::table::Table;
use super::text::Stored;
use super::{Exec, Listed, OrNotFound, Page, Result, atomically, new_uuid, now_ms, user};
use uuid::Uuid;

/// `type` of a normal user account.
pub const TYPE_USER: i64 = 0;
/// `type` of a root admin account.
pub const TYPE_ADMIN: i64 = 1;
/// `type` of a domain admin account.
pub const TYPE_DOMAIN_ADMIN: i64 = 2;

crate::text_enum! {
    /// An account's state (column `state`).
    pub enum State {
        /// `state` of an account that may log in and act.
        Enabled = "enabled",
        /// `state` of an account whose users are refused.
        Disabled = "disabled",
        /// `state` of an account locked by `disableAccount lock=true`: its
        /// users are refused, its VMs keep running (CloudStack's `locked`).
        Locked = "locked",
    }
}

/// `state` of an account that may log in and act.
pub const STATE_ENABLED: State = State::Enabled;
/// `state` of an account whose users are refused.
pub const STATE_DISABLED: State = State::Disabled;
/// `state` of a locked account.
pub const STATE_LOCKED: State = State::Locked;

/// An `account` row, with the path of its domain.
#[derive(Clone, Debug, PartialEq, Eq, FromRow)]
pub struct Account {
    /// Internal key.
    pub id: i64,
    /// API id.
    #[sqlx(try_from = "Stored")]
    pub uuid: Uuid,
    /// Name, unique among the live accounts of its domain.
    pub account_name: String,
    /// [`TYPE_USER`], [`TYPE_ADMIN`] or [`TYPE_DOMAIN_ADMIN`].
    #[sqlx(rename = "type")]
    pub account_type: i64,
    /// The owning domain.
    pub domain_id: i64,
    /// The owning domain's path (`/`, `/a/`), for subtree checks.
    pub domain_path: String,
    /// [`STATE_ENABLED`], [`STATE_DISABLED`] or [`STATE_LOCKED`].
    #[sqlx(try_from = "String")]
    pub state: State,
    /// DNS domain for this account's networks.
    pub network_domain: Option<String>,
    /// Creation time (epoch ms).
    pub created: i64,
    /// Removal time (epoch ms), if removed.
    pub removed: Option<i64>,
}

/// An account to create.
#[derive(Clone, Debug)]
pub struct NewAccount {
    /// Name, unique among the live accounts of the domain.
    pub account_name: String,
    /// [`TYPE_USER`], [`TYPE_ADMIN`] or [`TYPE_DOMAIN_ADMIN`].
    pub account_type: i64,
    /// The owning domain.
    pub domain_id: i64,
    /// DNS domain for its networks.
    pub network_domain: Option<String>,
}

/// Filters of an account list; every set field must match.
#[derive(Clone, Debug, Default)]
pub struct AccountFilter {
    /// Only these accounts (API ids).
    pub uuids: Option<Vec<Uuid>>,
    /// Exact account name.
    pub name: Option<String>,
    /// Only accounts of this domain.
    pub domain_id: Option<i64>,
    /// Only accounts in the subtree rooted at this domain path.
    pub domain_path_prefix: Option<String>,
    /// Substring of the name, case-insensitive.
    pub keyword: Option<String>,
    /// Only this state.
    pub state: Option<String>,
    /// Only this type.
    pub account_type: Option<i64>,
}

const COLUMNS: &str = "a.id, a.uuid, a.account_name, a.type, a.domain_id, d.path AS domain_path, \
                       a.state, a.network_domain, a.created, a.removed";
const FROM: &str = "account a JOIN domain d ON d.id = a.domain_id";
const TABLE: Table<Account> = Table::joined("account", COLUMNS, FROM, "a.");

/// Creates an account in a live domain.
pub async fn create<'a>(ex: impl Into<Exec<'a>>, new: NewAccount) -> Result<Account> {
    let mut ex = ex.into();
    let id: Option<i64> = on_db!(&mut ex, c => {
        sqlx::query_scalar(
            "INSERT INTO account (uuid, account_name, type, domain_id, state, network_domain, created) \
             SELECT $1, $2, $3, d.id, 'enabled', $5, $6 FROM domain d \
             WHERE d.id = $4 AND d.removed IS NULL RETURNING id",
        )
        .bind(new_uuid())
        .bind(&new.account_name)
        .bind(new.account_type)
        .bind(new.domain_id)
        .bind(&new.network_domain)
        .bind(now_ms())
        .fetch_optional(c)
        .await?
    });
    let id = id.or_not_found("domain", new.domain_id)?;
    get_by_id(ex, id).await?.or_not_found("account", id)
}

/// An account by internal id, removed or not.
pub async fn get_by_id<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<Option<Account>> {
    TABLE.by_id(ex, id).await
}

/// An account by UUID, removed or not.
pub async fn get_by_uuid<'a>(ex: impl Into<Exec<'a>>, uuid: Uuid) -> Result<Option<Account>> {
    TABLE.by_uuid(ex, uuid).await
}

/// Accounts by internal id, removed or not, in one statement (list views).
pub async fn by_ids<'a>(ex: impl Into<Exec<'a>>, ids: &[i64]) -> Result<Vec<Account>> {
    TABLE.by_ids(ex, ids).await
}

/// The live account `name` of a domain.
pub async fn get_by_name<'a>(
    ex: impl Into<Exec<'a>>,
    domain_id: i64,
    name: &str,
) -> Result<Option<Account>> {
    let mut w = Where::new();
    w.push("a.removed IS NULL")
        .eq("a.domain_id", domain_id)
        .eq("a.account_name", name);
    TABLE.first(ex, &w).await
}

/// Lists live accounts, by name.
pub async fn list<'a>(
    ex: impl Into<Exec<'a>>,
    filter: &AccountFilter,
    page: Page,
) -> Result<Listed<Account>> {
    let mut w = Where::new();
    w.push("a.removed IS NULL")
        .eq_opt("a.account_name", filter.name.clone())
        .eq_opt("a.domain_id", filter.domain_id)
        .eq_opt("a.state", filter.state.clone())
        .eq_opt("a.type", filter.account_type)
        .keyword(&["a.account_name"], filter.keyword.as_deref())
        .any_of_opt("a.uuid", filter.uuids.as_deref())
        .starts_with_opt("d.path", filter.domain_path_prefix.as_deref());
    TABLE.list(ex, &w, "a.account_name, a.id", page).await
}

/// Renames an account and/or sets its network domain (`None` leaves a field as is).
pub async fn update<'a>(
    ex: impl Into<Exec<'a>>,
    id: i64,
    account_name: Option<&str>,
    network_domain: Option<&str>,
) -> Result<bool> {
    let values = [
        ("account_name", account_name.into()),
        ("network_domain", network_domain.into()),
    ];
    TABLE.update_live(ex, id, &values).await
}

/// Enables or disables a live account.
pub async fn set_state<'a>(ex: impl Into<Exec<'a>>, id: i64, state: State) -> Result<bool> {
    TABLE.set_state(ex, id, state.as_str()).await
}

/// Marks an account and its users removed, atomically; their API keys stop working.
pub async fn remove<'a>(ex: impl Into<Exec<'a>>, id: i64) -> Result<bool> {
    atomically(ex.into(), move |tx| {
        Box::pin(async move {
            let mut ex = Exec::Tx(tx);
            let now = now_ms();
            user::TABLE
                .remove_where(ex.reborrow(), "account_id", id, now)
                .await?;
            Ok(TABLE.remove_where(ex, "id", id, now).await? == 1)
        })
    })
    .await
}
