//! `listManagementServers`: the managers that share this database, Up
//! while their heartbeat is younger than `cluster.heartbeat.threshold`,
//! Down otherwise (root admins only, as in CloudStack).

use serde_json::{Value, json};
use uuid::Uuid;

use crate::cluster;
use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand, Text};
use crate::server::list_paging::Paging;
use crate::server::registry::{FieldSpec, ROOT, field};
use crate::server::{Ctx, Reply, date};
use crate::store::cluster::Member;
use crate::store::{self, now_ms};

const ID: Arg<Id> = Arg::opt("id", "the id of the management server");
const NAME: Arg<Text> = Arg::opt("name", "the name of the management server");

/// `listManagementServers`.
pub struct ListManagementServers {
    id: Option<Uuid>,
    name: Option<String>,
    paging: Paging,
}

impl Command for ListManagementServers {
    const NAME: &'static str = "listManagementServers";

    fn spec() -> Spec {
        Spec::new("Lists management servers.")
            .roles(ROOT)
            .param(ID)
            .param(NAME)
            .params(Paging::specs())
            .returns("managementserver", MANAGEMENT_SERVER_FIELDS)
            .since("4.15.0")
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListManagementServers {
            id: args.get(&ID)?,
            name: args.get(&NAME)?,
            paging: Paging::parse(args)?,
        })
    }
}

impl SyncCommand for ListManagementServers {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let threshold = cluster::heartbeat_threshold_ms(db).await?;
        let keyword = self.paging.keyword.clone().unwrap_or_default();
        let members: Vec<Member> = store::cluster::list(db, self.id, self.name.as_deref())
            .await?
            .into_iter()
            .filter(|m| m.name.contains(&keyword))
            .collect();
        let page = self.paging.page(ctx).await?;
        let now = now_ms();
        let start = usize::try_from(page.offset).unwrap_or(0).min(members.len());
        let end = page.limit.map_or(members.len(), |limit| {
            start
                .saturating_add(usize::try_from(limit).unwrap_or(0))
                .min(members.len())
        });
        let items = members[start..end]
            .iter()
            .map(|m| view(m, now, threshold))
            .collect();
        Ok(Reply::List {
            count: members.len() as u64,
            items,
        })
    }
}

/// The `managementserver` object.
fn view(m: &Member, now: i64, threshold_ms: i64) -> Value {
    // The address without its port, as CloudStack shows its service IP.
    let ip = m
        .address
        .rsplit_once(':')
        .map_or(m.address.as_str(), |(host, _)| host)
        .trim_matches(['[', ']']);
    json!({
        "id": m.uuid,
        "name": m.name,
        "state": m.state_at(now, threshold_ms).as_str(),
        "version": m.version,
        "osdistribution": m.os_distribution,
        "kernelversion": m.kernel_version,
        "ipaddress": ip,
        "serviceip": ip,
        "lastserverstart": date(m.started),
        "lastserverstop": m.stopped.map(date),
        "lastboottime": m.last_boot.map(date),
    })
}

const MANAGEMENT_SERVER_FIELDS: &[FieldSpec] = &[
    field("id", "string", "the ID of the management server"),
    field("name", "string", "the name of the management server"),
    field(
        "state",
        "string",
        "Up, or Down when its heartbeat is late or it left",
    ),
    field("version", "string", "the version of the management server"),
    field("osdistribution", "string", "the OS distribution it runs on"),
    field("kernelversion", "string", "the kernel it runs on"),
    field("ipaddress", "string", "the address its API listens on"),
    field("serviceip", "string", "the same as ipaddress (deprecated)"),
    field("lastserverstart", "date", "when it last started"),
    field("lastserverstop", "date", "when it last stopped"),
    field("lastboottime", "date", "when its host last booted"),
];
