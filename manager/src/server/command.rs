//! One API command, one type.
//!
//! (Over 400 lines: a third is the doc tests that prove an async command
//! without a job body does not compile; the rest is one framework.)
//!
//! A command is a struct holding its parsed request. It implements
//! [`Command`] (its name, its [`Spec`] as `listApis` shows it, and `parse`,
//! from the request's parameters into the struct), then either
//! [`SyncCommand`] (`handle`: the answer is in the HTTP response) or
//! [`AsyncCommand`] (`submit`: checks and a typed job payload, stored in the
//! job row; `run`: the job body, which takes that payload). Registering is
//! one line per command ([`Registry::sync`], [`Registry::job`]); an async
//! command without a job body does not compile.
//!
//! Parameters are declared once, as [`Arg`] constants: the constant gives
//! `listApis` its name, type and description, and `parse` reads the typed
//! value through it ([`Args::get`], [`Args::need`]).
//!
//! Job payloads are serde types: a job row holds everything its body needs
//! to run (again, on whichever manager claims it), never a half-read
//! `serde_json::Value`.

use std::collections::BTreeMap;
use std::future::Future;
use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::api::{ApiError, Params};
use crate::error::Error;
use crate::future::BoxFuture;
use crate::server::context::{App, Ctx};
use crate::server::jobs::JobCtx;
use crate::server::registry::{
    CommandSpec, FieldSpec, JobEntry, Kind, ParamSpec, ParamType, Registry, Reply, Role,
};
use crate::services::event as events;

/// What `listApis` shows of a command, besides its name and kind.
#[derive(Debug, Clone)]
pub struct Spec {
    pub description: &'static str,
    pub roles: &'static [Role],
    pub params: Vec<ParamSpec>,
    /// The key under which a single object appears (`vpc`, `zone`, ...).
    pub object: &'static str,
    pub response: Vec<FieldSpec>,
    pub since: &'static str,
}

/// A spec is built in one chain, `Spec::new(description).roles(roles)
/// .param(ID).param(NAME).returns(object, fields)`, so a command says only what is
/// its own; the fields stay public for commands written as a literal.
impl Spec {
    /// A command no role may call yet, with no parameters, no response
    /// object and no `since`.
    pub fn new(description: &'static str) -> Self {
        Spec {
            description,
            roles: &[],
            params: Vec::new(),
            object: "",
            response: Vec::new(),
            since: "",
        }
    }

    /// The roles that may call the command.
    pub fn roles(mut self, roles: &'static [Role]) -> Self {
        self.roles = roles;
        self
    }

    /// Appends a parameter: `listApis` shows them in the order they are added.
    pub fn param<T: ArgType>(mut self, arg: Arg<T>) -> Self {
        self.params.push(arg.spec());
        self
    }

    /// Appends a group of parameters (`ListArgs::specs()`, ...).
    pub fn params(mut self, params: impl IntoIterator<Item = ParamSpec>) -> Self {
        self.params.extend(params);
        self
    }

    /// The key of the single object the command answers with, and its fields
    /// (a resource's field list is a `const` slice, written once).
    pub fn returns(mut self, object: &'static str, response: impl Into<Vec<FieldSpec>>) -> Self {
        self.object = object;
        self.response = response.into();
        self
    }

    /// The CloudStack version that added the command.
    pub fn since(mut self, since: &'static str) -> Self {
        self.since = since;
        self
    }
}

/// An API command: its name, what `listApis` shows, and how its request is
/// read. `Self` is the parsed request.
pub trait Command: Sized + Send + 'static {
    /// The command's name (`createVPC`).
    const NAME: &'static str;

    /// Its description, roles, parameters and response fields.
    fn spec() -> Spec;

    /// Reads the request's parameters into the command. The registry has
    /// already checked that required parameters are present, that strings
    /// fit their length and that typed values parse as their type.
    fn parse(args: &Args<'_>) -> Result<Self, Error>;
}

/// A command whose answer is in the HTTP response.
pub trait SyncCommand: Command {
    fn handle(self, ctx: &Ctx) -> impl Future<Output = Result<Reply, Error>> + Send;
}

/// A command that answers with a job.
///
/// The job body is part of the trait, so an async command without one does
/// not compile. This one has its body and compiles:
///
/// ```
/// use serde_json::{Value, json};
/// use vpc_manager::error::Error;
/// use vpc_manager::server::Ctx;
/// use vpc_manager::server::command::{Args, AsyncCommand, Command, Spec, Submission};
/// use vpc_manager::server::jobs::JobCtx;
/// use vpc_manager::server::registry::{ALL, Registry};
///
/// struct Ping;
///
/// impl Command for Ping {
///     const NAME: &'static str = "ping";
///     fn spec() -> Spec {
///         Spec::new("ping").roles(ALL).returns("ping", vec![])
///     }
///     fn parse(_: &Args<'_>) -> Result<Self, Error> {
///         Ok(Ping)
///     }
/// }
///
/// impl AsyncCommand for Ping {
///     type Job = ();
///     async fn submit(self, _: &Ctx) -> Result<Submission<()>, Error> {
///         Ok(Submission::new((), ("Ping", uuid::Uuid::nil()), "ping".into()))
///     }
///     async fn run(_: &JobCtx, _: ()) -> Result<Value, Error> {
///         Ok(json!({ "success": true }))
///     }
/// }
///
/// Registry::default().job::<Ping>();
/// ```
///
/// The same command without `run` is refused by the compiler:
///
/// ```compile_fail,E0046
/// use serde_json::{Value, json};
/// use vpc_manager::error::Error;
/// use vpc_manager::server::Ctx;
/// use vpc_manager::server::command::{Args, AsyncCommand, Command, Spec, Submission};
/// use vpc_manager::server::registry::{ALL, Registry};
///
/// struct Ping;
///
/// impl Command for Ping {
///     const NAME: &'static str = "ping";
///     fn spec() -> Spec {
///         Spec::new("ping").roles(ALL).returns("ping", vec![])
///     }
///     fn parse(_: &Args<'_>) -> Result<Self, Error> {
///         Ok(Ping)
///     }
/// }
///
/// impl AsyncCommand for Ping {
///     type Job = ();
///     async fn submit(self, _: &Ctx) -> Result<Submission<()>, Error> {
///         Ok(Submission::new((), ("Ping", uuid::Uuid::nil()), "ping".into()))
///     }
/// }
///
/// Registry::default().job::<Ping>();
/// ```
pub trait AsyncCommand: Command {
    /// True for CloudStack's async-create commands: the entity row is
    /// created by `submit`, the response carries its id with the job's.
    const CREATES: bool = false;

    /// True when `run` is safe to run again from its stored payload after it
    /// was cut off at any point: it re-sends what the rows say (a repeated
    /// push carries a new generation and changes nothing that is already
    /// applied) and looks for what exists before it makes anything. The job
    /// of a manager that died is then run again by another manager
    /// (issue 11's take-over); otherwise it is failed after `abandon`.
    const RERUN: bool = false;

    /// What the job row stores: everything `run` needs.
    type Job: Serialize + DeserializeOwned + Send + Sync + 'static;

    /// Checks the request (and, for async-create commands, creates the
    /// entity) and returns the job to store.
    fn submit(self, ctx: &Ctx)
    -> impl Future<Output = Result<Submission<Self::Job>, Error>> + Send;

    /// The job body: the result is a one-key object such as
    /// `{"vpc": {...}}`, or `{"success": true}`.
    fn run(job: &JobCtx, payload: Self::Job) -> impl Future<Output = Result<Value, Error>> + Send;

    /// Undoes what `submit` made when its job never ran: the job could not
    /// be stored, or the manager running it died (the job then fails, and a
    /// failure must leave what a failed run leaves). Nothing by default.
    fn abandon(_app: &App, _payload: Self::Job) -> impl Future<Output = Result<(), Error>> + Send {
        async { Ok(()) }
    }
}

/// A job the manager queues for itself, not started by an API command
/// (a host's loss restarting its routers elsewhere): a name for the job
/// row, a typed payload and a body, run by the job runner like a command's
/// job (one at a time per sync object, taken over when its manager dies).
pub trait InternalJob: Sized + Send + 'static {
    /// The job row's `cmd`; it must not be an API command's name.
    const NAME: &'static str;

    /// As [`AsyncCommand::RERUN`].
    const RERUN: bool = false;

    /// What the job row stores: everything `run` needs.
    type Job: Serialize + DeserializeOwned + Send + Sync + 'static;

    /// The job body.
    fn run(job: &JobCtx, payload: Self::Job) -> impl Future<Output = Result<Value, Error>> + Send;
}

/// The job an async command submits.
#[derive(Debug, Clone)]
pub struct Submission<J> {
    pub job: J,
    /// `jobinstancetype` and `jobinstanceid` (the entity's UUID).
    pub instance: Option<(&'static str, Uuid)>,
    /// Jobs with the same sync object run one at a time (e.g. `vpc:7`).
    pub sync_object: String,
    /// The UUID of the entity an async-create command made.
    pub created: Option<Uuid>,
}

impl<J> Submission<J> {
    /// A job on the entity `instance` (type, UUID), serialized on `sync_object`.
    pub fn new(job: J, instance: (&'static str, Uuid), sync_object: String) -> Self {
        Submission {
            job,
            instance: Some(instance),
            sync_object,
            created: None,
        }
    }

    /// The same, for the entity an async-create command made (its UUID is
    /// the response's `id`).
    pub fn created(job: J, instance: (&'static str, Uuid), sync_object: String) -> Self {
        Submission {
            created: Some(instance.1),
            ..Submission::new(job, instance, sync_object)
        }
    }
}

/// The job of a command on one row (a VM, a tier, a list...): its row id,
/// stored as `{"id": n}`, the key every earlier version used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdJob {
    pub id: i64,
}

/// A parameter's value type: how `listApis` names it and how it is read.
pub trait ArgType {
    const TYPE: ParamType;
    type Value;
    /// Reads parameter `name`; `length` bounds a string value (the
    /// parameter's declared length).
    fn read(params: &Params, name: &str, length: usize) -> Result<Option<Self::Value>, ApiError>;
}

/// Text (`string`); an empty value reads as `Some("")`.
pub struct Text;
/// A UUID (`uuid`); empty reads as absent.
pub struct Id;
/// A boolean: only `true` (any case) is true.
pub struct Flag;
/// A 32-bit integer (`integer`).
pub struct Int;
/// A 64-bit integer (`long`).
pub struct Long;
/// A comma-separated list of texts (`list`).
pub struct Texts;
/// A comma-separated list of UUIDs (`list`).
pub struct Ids;
/// A map sent as `name[i].key=value` (`map`).
pub struct Map;
/// A date (`date`).
pub struct Date;

impl ArgType for Text {
    const TYPE: ParamType = ParamType::String;
    type Value = String;
    fn read(params: &Params, name: &str, length: usize) -> Result<Option<String>, ApiError> {
        params.string_max(name, length)
    }
}

impl ArgType for Id {
    const TYPE: ParamType = ParamType::Uuid;
    type Value = Uuid;
    fn read(params: &Params, name: &str, _length: usize) -> Result<Option<Uuid>, ApiError> {
        params.uuid(name)
    }
}

impl ArgType for Flag {
    const TYPE: ParamType = ParamType::Boolean;
    type Value = bool;
    fn read(params: &Params, name: &str, _length: usize) -> Result<Option<bool>, ApiError> {
        params.boolean(name)
    }
}

impl ArgType for Int {
    const TYPE: ParamType = ParamType::Integer;
    type Value = i32;
    fn read(params: &Params, name: &str, _length: usize) -> Result<Option<i32>, ApiError> {
        params.integer(name)
    }
}

impl ArgType for Long {
    const TYPE: ParamType = ParamType::Long;
    type Value = i64;
    fn read(params: &Params, name: &str, _length: usize) -> Result<Option<i64>, ApiError> {
        params.long(name)
    }
}

impl ArgType for Texts {
    const TYPE: ParamType = ParamType::List;
    type Value = Vec<String>;
    fn read(params: &Params, name: &str, _length: usize) -> Result<Option<Vec<String>>, ApiError> {
        params.list(name)
    }
}

impl ArgType for Ids {
    const TYPE: ParamType = ParamType::List;
    type Value = Vec<Uuid>;
    fn read(params: &Params, name: &str, _length: usize) -> Result<Option<Vec<Uuid>>, ApiError> {
        params.uuid_list(name)
    }
}

impl ArgType for Map {
    const TYPE: ParamType = ParamType::Map;
    type Value = Vec<BTreeMap<String, String>>;
    fn read(params: &Params, name: &str, _length: usize) -> Result<Option<Self::Value>, ApiError> {
        let entries = params.map(name)?;
        Ok((!entries.is_empty()).then_some(entries))
    }
}

impl ArgType for Date {
    const TYPE: ParamType = ParamType::Date;
    type Value = DateTime<Utc>;
    fn read(
        params: &Params,
        name: &str,
        _length: usize,
    ) -> Result<Option<DateTime<Utc>>, ApiError> {
        params.date(name)
    }
}

/// One parameter of a command, declared once: `listApis` shows its spec,
/// `parse` reads its typed value through it.
#[derive(Debug)]
pub struct Arg<T> {
    spec: ParamSpec,
    ty: PhantomData<fn() -> T>,
}

impl<T> Clone for Arg<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for Arg<T> {}

impl<T: ArgType> Arg<T> {
    /// A required parameter.
    pub const fn req(name: &'static str, description: &'static str) -> Self {
        Arg {
            spec: ParamSpec {
                name,
                ty: T::TYPE,
                required: true,
                description,
                length: 255,
                since: "",
                range: None,
                refused: None,
            },
            ty: PhantomData,
        }
    }

    /// An optional parameter.
    pub const fn opt(name: &'static str, description: &'static str) -> Self {
        let mut arg = Self::req(name, description);
        arg.spec.required = false;
        arg
    }

    /// The longest value a string parameter takes (255 unless said).
    pub const fn length(mut self, length: u32) -> Self {
        self.spec.length = length;
        self
    }

    /// The values an integer or long parameter takes (inclusive).
    pub const fn within(mut self, min: i64, max: i64) -> Self {
        self.spec.range = Some((min, max));
        self
    }

    /// Refused with 431 when given (not empty), for the reason `why`:
    /// CloudStack has the parameter, this manager does not do what it asks.
    pub const fn refused(mut self, why: &'static str) -> Self {
        self.spec.refused = Some(why);
        self
    }

    /// The CloudStack version that added the parameter.
    pub const fn since(mut self, since: &'static str) -> Self {
        self.spec.since = since;
        self
    }

    /// The parameter's name.
    pub const fn name(&self) -> &'static str {
        self.spec.name
    }

    /// What `listApis` shows of the parameter.
    pub const fn spec(&self) -> ParamSpec {
        self.spec
    }
}

/// The parameters of one request to one command, read through [`Arg`]s.
pub struct Args<'a> {
    command: &'static str,
    params: &'a Params,
}

impl<'a> Args<'a> {
    pub fn new(command: &'static str, params: &'a Params) -> Self {
        Args { command, params }
    }

    /// The command's name, for error texts.
    pub fn command(&self) -> &'static str {
        self.command
    }

    /// The value of an optional parameter (None when absent).
    pub fn get<T: ArgType>(&self, arg: &Arg<T>) -> Result<Option<T::Value>, Error> {
        Ok(T::read(
            self.params,
            arg.spec.name,
            arg.spec.length as usize,
        )?)
    }

    /// The value of a parameter that must be given (431 "missing
    /// parameter" when absent).
    pub fn need<T: ArgType>(&self, arg: &Arg<T>) -> Result<T::Value, Error> {
        self.get(arg)?
            .ok_or_else(|| Error::missing_param(self.command, arg.spec.name))
    }

    /// A text parameter, None when absent or empty.
    pub fn text(&self, arg: &Arg<Text>) -> Result<Option<String>, Error> {
        Ok(self.get(arg)?.filter(|v| !v.is_empty()))
    }

    /// The request's parameters, for what no [`Arg`] reads (paging, the
    /// owner parameters shared by many commands).
    pub fn params(&self) -> &'a Params {
        self.params
    }
}

impl Registry {
    /// Registers a synchronous command.
    pub fn sync<C: SyncCommand>(&mut self) {
        self.insert(spec_of::<C>(Kind::Sync, handle_sync::<C>, None));
    }

    /// Registers an async (or async-create) command and its job body.
    pub fn job<C: AsyncCommand>(&mut self) {
        let kind = if C::CREATES {
            Kind::AsyncCreate
        } else {
            Kind::Async
        };
        let entry = JobEntry {
            run: run_job::<C>,
            abandon: abandon_job::<C>,
            rerun: C::RERUN,
        };
        self.insert(spec_of::<C>(kind, submit_job::<C>, Some(entry)));
    }
}

impl Registry {
    /// Registers an internal job.
    pub fn internal<J: InternalJob>(&mut self) {
        self.insert_internal(
            J::NAME,
            JobEntry {
                run: run_internal::<J>,
                abandon: |_, _| Box::pin(async { Ok(()) }),
                rerun: J::RERUN,
            },
        );
    }
}

fn run_internal<'a, J: InternalJob>(
    job: &'a JobCtx,
    info: &'a str,
) -> BoxFuture<'a, Result<Value, ApiError>> {
    Box::pin(async move {
        let payload: J::Job = serde_json::from_str(info).map_err(|e| {
            Error::internal(format!("the stored job of {} is unreadable: {e}", J::NAME))
        })?;
        Ok(J::run(job, payload).await?)
    })
}

fn spec_of<C: Command>(
    kind: Kind,
    handler: crate::server::registry::Handler,
    job: Option<JobEntry>,
) -> CommandSpec {
    let spec = C::spec();
    CommandSpec {
        name: C::NAME,
        description: spec.description,
        kind,
        roles: spec.roles,
        params: spec.params,
        object: spec.object,
        response: spec.response,
        since: spec.since,
        handler,
        job,
    }
}

fn handle_sync<'a, C: SyncCommand>(
    ctx: &'a Ctx,
    params: &'a Params,
) -> BoxFuture<'a, Result<Reply, ApiError>> {
    Box::pin(async move {
        let request = C::parse(&Args::new(C::NAME, params))?;
        let handled = request.handle(ctx).await;
        record_sync_event(ctx, C::NAME, handled.is_ok()).await;
        Ok(handled?)
    })
}

/// Files the Completed event of a sync command that has one (CloudStack's
/// interceptor writes it once the service method returned or threw). A
/// failure to write it is logged, not answered: the change is made.
async fn record_sync_event(ctx: &Ctx, command: &str, ok: bool) {
    let Some((event_type, what)) = events::event_of(command) else {
        return;
    };
    let action = events::Action {
        event_type,
        what,
        user_id: ctx.caller.user_id,
        account_id: ctx.caller.account_id,
        resource: None,
    };
    let state = crate::store::event::STATE_COMPLETED;
    if let Err(e) = events::record(&ctx.app.db, &action, state, ok, 0).await {
        tracing::warn!(command, error = %e, "recording an event failed");
    }
}

fn submit_job<'a, C: AsyncCommand>(
    ctx: &'a Ctx,
    params: &'a Params,
) -> BoxFuture<'a, Result<Reply, ApiError>> {
    Box::pin(async move {
        let request = C::parse(&Args::new(C::NAME, params))?;
        let submitted = request.submit(ctx).await;
        if C::CREATES {
            record_created_event(
                ctx,
                C::NAME,
                submitted.as_ref().ok().and_then(|s| s.instance),
            )
            .await;
        }
        let submission = submitted?;
        let instance = submission.instance;
        // A payload that cannot be stored is a job that could not be
        // stored: what `submit` made is undone either way.
        let submitted = match serde_json::to_value(&submission.job) {
            Ok(info) => {
                ctx.submit_job(info, instance, submission.sync_object.clone())
                    .await
            }
            Err(e) => Err(Error::internal(format!("the job of {}: {e}", C::NAME))),
        };
        let job_id = match submitted {
            Ok(job_id) => job_id,
            Err(e) => {
                if let Err(undo) = C::abandon(&ctx.app, submission.job).await {
                    tracing::error!(command = C::NAME, error = %undo, "undoing a command whose job could not be stored");
                }
                return Err(e.into());
            }
        };
        Ok(match submission.created {
            Some(id) if C::CREATES => Reply::Created {
                id: id.to_string(),
                job_id,
            },
            _ => Reply::Job { job_id },
        })
    })
}

/// Files the Created event of an async-create command (CloudStack's
/// interceptor on its `create` step): INFO with the entity it made, or
/// ERROR when it made none.
async fn record_created_event(ctx: &Ctx, command: &str, made: Option<(&'static str, Uuid)>) {
    let Some((event_type, what)) = events::event_of(command) else {
        return;
    };
    let action = events::Action {
        event_type,
        what,
        user_id: ctx.caller.user_id,
        account_id: ctx.caller.account_id,
        resource: made.map(|(t, id)| (t, id.to_string())),
    };
    let state = crate::store::event::STATE_CREATED;
    if let Err(e) = events::record(&ctx.app.db, &action, state, made.is_some(), 0).await {
        tracing::warn!(command, error = %e, "recording an event failed");
    }
}

/// Reads a job row's payload as the command's job type.
fn payload<C: AsyncCommand>(info: &str) -> Result<C::Job, Error> {
    serde_json::from_str(info)
        .map_err(|e| Error::internal(format!("the stored job of {} is unreadable: {e}", C::NAME)))
}

fn run_job<'a, C: AsyncCommand>(
    job: &'a JobCtx,
    info: &'a str,
) -> BoxFuture<'a, Result<Value, ApiError>> {
    Box::pin(async move { Ok(C::run(job, payload::<C>(info)?).await?) })
}

fn abandon_job<'a, C: AsyncCommand>(
    app: &'a App,
    info: &'a str,
) -> BoxFuture<'a, Result<(), Error>> {
    Box::pin(async move { C::abandon(app, payload::<C>(info)?).await })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_id_job_keeps_the_id_key_that_earlier_versions_stored() {
        // Gateway, route, account, VM, tier, VPC, offering, physical
        // network and ACL list jobs were all stored as `{"id": n}`.
        let job: IdJob = serde_json::from_str(r#"{"id": 42}"#).unwrap();
        assert_eq!(job.id, 42);
        assert_eq!(serde_json::to_value(job).unwrap(), json!({ "id": 42 }));
        assert!(serde_json::from_value::<IdJob>(json!({})).is_err());
    }
}
