//! What every handler sees: the application and the authenticated caller.

use std::sync::Arc;

use serde_json::Value;
use uuid::Uuid;

use crate::server::jobs::Submit;

use crate::server::jobs::Jobs;
use crate::server::registry::{Registry, Role};
use crate::settings::Settings;
use crate::store::{Db, user};

/// The running manager: its store, commands, jobs and settings.
pub struct App {
    pub db: Db,
    pub registry: Registry,
    pub jobs: Jobs,
    pub settings: Settings,
    /// The database key: seals and opens secrets at rest (users' secret keys).
    pub secrets: crate::store::secret::SecretBox,
    /// Password checks of `login`, off the async workers.
    pub logins: crate::server::auth::Logins,
    /// The network plug-ins and the element that drives routers.
    pub network: Arc<crate::provision::Network>,
    /// The members sharing the work, as the heartbeat last read them.
    pub members: crate::cluster::Members,
}

impl App {
    /// What provisioning needs: the store and the network side.
    pub fn plane(&self) -> crate::provision::Plane {
        crate::provision::Plane {
            db: self.db.clone(),
            network: self.network.clone(),
            member: self.jobs.owner().to_string(),
            members: self.members.clone(),
        }
    }
}

/// The authenticated user behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub user_id: i64,
    pub user_uuid: Uuid,
    pub account_id: i64,
    pub account_uuid: Uuid,
    pub account_name: String,
    /// 0 user, 1 root admin, 2 domain admin.
    pub account_type: i64,
    pub domain_id: i64,
    pub domain_uuid: Uuid,
    /// The domain's path (`/`, `/a/`, ...): a domain admin sees this subtree.
    pub domain_path: String,
    pub role: Role,
}

/// The caller a live user's identity row makes: a request's (after its
/// signature or session checks) and a job's (the user who submitted it).
impl From<user::Identity> for Caller {
    fn from(identity: user::Identity) -> Self {
        Caller {
            role: Role::of_account_type(identity.account_type),
            user_id: identity.user_id,
            user_uuid: identity.user_uuid,
            account_id: identity.account_id,
            account_uuid: identity.account_uuid,
            account_name: identity.account_name,
            account_type: identity.account_type,
            domain_id: identity.domain_id,
            domain_uuid: identity.domain_uuid,
            domain_path: identity.domain_path,
        }
    }
}

impl Caller {
    /// True for the root admin, who sees and changes everything.
    pub fn is_root_admin(&self) -> bool {
        self.role == Role::Admin
    }

    /// True when the caller may act on objects of the domain at `path`:
    /// root everywhere, a domain admin in its subtree, a user only in its own
    /// account (checked separately against the account).
    pub fn covers_domain(&self, path: &str) -> bool {
        match self.role {
            Role::Admin => true,
            Role::DomainAdmin => path.starts_with(&self.domain_path),
            Role::User => path == self.domain_path,
        }
    }

    /// True when the caller may act on objects owned by account
    /// `account_id` in the domain at `path`.
    pub fn covers(&self, account_id: i64, path: &str) -> bool {
        match self.role {
            Role::User => account_id == self.account_id,
            _ => self.covers_domain(path),
        }
    }
}

/// One request being handled.
pub struct Ctx {
    pub app: Arc<App>,
    pub caller: Caller,
    /// The command's name as registered.
    pub command: &'static str,
    /// The id the caller chose for the command's job (`customjobid`),
    /// checked before the handler runs.
    pub custom_job_id: Option<Uuid>,
    /// The request came by POST (CloudStack bounds some parameters, such as
    /// user data, by the method).
    pub http_post: bool,
}

impl Ctx {
    /// Submits this command's job, working on `instance` (type and UUID) and
    /// serialized with other jobs on `sync_object`; returns the job's id.
    pub async fn submit_job(
        &self,
        info: Value,
        instance: Option<(&str, Uuid)>,
        sync_object: String,
    ) -> Result<String, crate::error::Error> {
        let submit = Submit {
            cmd: self.command,
            info,
            instance,
            sync_object: Some(sync_object),
            custom_id: self.custom_job_id,
        };
        self.app
            .jobs
            .submit(&self.app, &self.caller, submit)
            .await
            .map_err(crate::error::Error::from)
    }
}
