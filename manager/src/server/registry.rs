//! The command registry: every API command with its kind, the roles allowed
//! to call it, its parameters and response fields (what `listApis` shows, and
//! what the dispatcher checks), and its handler.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::api::{ApiError, Params};
use crate::server::command::{Arg, Text};
use crate::server::context::{App, Ctx};
use crate::server::jobs::JobCtx;

/// How a command answers (CloudStack's sync, async, async-create).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The result is in the HTTP response.
    Sync,
    /// The HTTP response carries a `jobid`; the work runs as a job.
    Async,
    /// The entity row is created during the request; the response carries its
    /// `id` and the `jobid` of the job that finishes the work.
    AsyncCreate,
}

/// The built-in roles (CloudStack's role types Admin, DomainAdmin, User).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Admin,
    DomainAdmin,
    User,
}

impl Role {
    /// The role of an account type (0 user, 1 root admin, 2 domain admin).
    pub fn of_account_type(account_type: i64) -> Role {
        match account_type {
            1 => Role::Admin,
            2 => Role::DomainAdmin,
            _ => Role::User,
        }
    }
}

/// Everyone.
pub const ALL: &[Role] = &[Role::Admin, Role::DomainAdmin, Role::User];
/// Admins and domain admins.
pub const ADMINS: &[Role] = &[Role::Admin, Role::DomainAdmin];
/// The root admin only.
pub const ROOT: &[Role] = &[Role::Admin];

/// A parameter's type as `listApis` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    String,
    Uuid,
    Boolean,
    Integer,
    Long,
    List,
    Map,
    Date,
}

impl ParamType {
    /// The lower-case name CloudMonkey uses for completion.
    pub fn name(self) -> &'static str {
        match self {
            ParamType::String => "string",
            ParamType::Uuid => "uuid",
            ParamType::Boolean => "boolean",
            ParamType::Integer => "integer",
            ParamType::Long => "long",
            ParamType::List => "list",
            ParamType::Map => "map",
            ParamType::Date => "date",
        }
    }
}

/// One parameter of a command.
#[derive(Debug, Clone, Copy)]
pub struct ParamSpec {
    pub name: &'static str,
    pub ty: ParamType,
    pub required: bool,
    pub description: &'static str,
    /// Maximum length of a string value.
    pub length: u32,
    pub since: &'static str,
    /// The values an integer or long parameter takes (inclusive), where
    /// CloudStack narrows the type's own range.
    pub range: Option<(i64, i64)>,
    /// Why the parameter is refused when given: CloudStack has it, this
    /// manager does not do what it asks (431 naming it, never silently
    /// dropped).
    pub refused: Option<&'static str>,
}

/// One field of a command's response object.
#[derive(Debug, Clone)]
pub struct FieldSpec {
    pub name: &'static str,
    pub ty: &'static str,
    pub description: &'static str,
}

/// A response field.
pub const fn field(name: &'static str, ty: &'static str, description: &'static str) -> FieldSpec {
    FieldSpec {
        name,
        ty,
        description,
    }
}

/// A response's fields from groups, in order: the resource's own and the
/// groups it shares with other responses (the owner's fields).
pub fn fields(groups: &[&[FieldSpec]]) -> Vec<FieldSpec> {
    groups.concat()
}

/// What a handler returns; the dispatcher wraps it in the envelope.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// One object, wrapped under the command's object name.
    Object(Value),
    /// A page of a list and the total count.
    List { count: u64, items: Vec<Value> },
    /// `{"success": true}`.
    Success,
    /// An async command's job.
    Job { job_id: String },
    /// An async-create command's new entity and job.
    Created { id: String, job_id: String },
    /// A body that is already the content of the response (login,
    /// queryAsyncJobResult, listApis quirks).
    Raw(Value),
}

impl Reply {
    /// A list with nothing in it (a filter that can match nothing).
    pub fn empty_list() -> Self {
        Reply::List {
            count: 0,
            items: Vec::new(),
        }
    }
}

pub use crate::future::BoxFuture;

/// A command handler.
pub type Handler = for<'a> fn(&'a Ctx, &'a Params) -> BoxFuture<'a, Result<Reply, ApiError>>;

/// One API command.
#[derive(Clone)]
pub struct CommandSpec {
    pub name: &'static str,
    pub description: &'static str,
    pub kind: Kind,
    pub roles: &'static [Role],
    pub params: Vec<ParamSpec>,
    /// The key under which a single object appears (`vpc`, `zone`, ...).
    pub object: &'static str,
    pub response: Vec<FieldSpec>,
    pub since: &'static str,
    pub handler: Handler,
    /// The job body of an async command.
    pub job: Option<JobEntry>,
}

/// What the job runner does with the jobs of one async command.
#[derive(Clone, Copy)]
pub struct JobEntry {
    /// Runs the job from its stored payload.
    pub run: for<'a> fn(&'a JobCtx, &'a str) -> BoxFuture<'a, Result<Value, ApiError>>,
    /// Undoes what the command made before its job ran (see
    /// [`crate::server::command::AsyncCommand::abandon`]).
    pub abandon: for<'a> fn(&'a App, &'a str) -> BoxFuture<'a, Result<(), crate::error::Error>>,
    /// The job runs again when its manager dies (see
    /// [`crate::server::command::AsyncCommand::RERUN`]).
    pub rerun: bool,
}

impl std::fmt::Debug for JobEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobEntry")
            .field("rerun", &self.rerun)
            .finish()
    }
}

impl std::fmt::Debug for CommandSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandSpec")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .finish()
    }
}

impl CommandSpec {
    /// Whether `role` may call this command.
    pub fn allows(&self, role: Role) -> bool {
        self.roles.contains(&role)
    }

    /// Checks that every required parameter is present and not empty, that
    /// string values fit their length, and that typed values parse as their
    /// type (CloudStack's `CommandType`: INTEGER a 32-bit integer, LONG
    /// 64-bit, UUID, DATE) within their range, before the handler runs: a
    /// handler never sees a number its type cannot hold.
    pub fn check_params(&self, params: &Params) -> Result<(), ApiError> {
        for p in &self.params {
            if let Some(why) = p.refused
                && params.get(p.name).is_some_and(|v| !v.is_empty())
            {
                return Err(ApiError::param(format!(
                    "Parameter {} of {} is not supported: {why}",
                    p.name, self.name
                )));
            }
            params.check_typed(self.name, p.name, p.ty.name(), p.range)?;
            let value = params.string_max(p.name, p.length as usize)?;
            match value {
                None if p.required => return Err(ApiError::missing_param(self.name, p.name)),
                Some(v) if v.is_empty() && p.required => {
                    return Err(ApiError::missing_param(self.name, p.name));
                }
                Some(v) if p.ty == ParamType::String && v.chars().count() > p.length as usize => {
                    return Err(ApiError::too_long(p.name, p.length as usize));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// All commands, by name.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    commands: BTreeMap<&'static str, CommandSpec>,
    /// Jobs the manager queues for itself, by name: no API command starts
    /// them and `listApis` does not show them.
    internal: BTreeMap<&'static str, JobEntry>,
}

/// Parameters every async command accepts (CloudStack §2.1).
fn async_params() -> Vec<ParamSpec> {
    const CUSTOM_JOB_ID: Arg<Text> = Arg::opt(
        "customjobid",
        "the id of the command's job: a lower-case UUID no job has yet",
    );
    vec![CUSTOM_JOB_ID.spec()]
}

impl Registry {
    /// Adds a command; async ones take `customjobid` too.
    pub(crate) fn insert(&mut self, mut c: CommandSpec) {
        if c.kind != Kind::Sync {
            c.params.extend(async_params());
        }
        let name = c.name;
        assert!(
            self.commands.insert(name, c).is_none(),
            "command {name} registered twice"
        );
    }

    /// The command called `name` (exact, as CloudStack looks them up).
    pub fn get(&self, name: &str) -> Option<&CommandSpec> {
        self.commands.get(name)
    }

    /// Every command, by name.
    pub fn all(&self) -> impl Iterator<Item = &CommandSpec> {
        self.commands.values()
    }

    /// The job body of the job named `name`: an async command's, or an
    /// internal job's.
    pub fn job_entry(&self, name: &str) -> Option<JobEntry> {
        self.commands
            .get(name)
            .and_then(|c| c.job)
            .or_else(|| self.internal.get(name).copied())
    }

    /// Adds an internal job.
    pub(crate) fn insert_internal(&mut self, name: &'static str, entry: JobEntry) {
        assert!(
            !self.commands.contains_key(name) && self.internal.insert(name, entry).is_none(),
            "job {name} registered twice"
        );
    }
}
