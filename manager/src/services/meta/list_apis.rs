//! `listApis`: the commands the caller's role may call, each with its
//! parameters and response fields, generated from the registry.

use serde_json::{Value, json};

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Spec, SyncCommand, Text};
use crate::server::registry::{ALL, CommandSpec, Kind, field};
use crate::server::{Ctx, Reply};

const NAME: Arg<Text> = Arg::opt("name", "only the API with this name");

/// `listApis`.
pub struct ListApis {
    name: Option<String>,
}

impl Command for ListApis {
    const NAME: &'static str = "listApis";

    fn spec() -> Spec {
        Spec::new("Lists the APIs the caller may call, with their parameters and responses")
            .roles(ALL)
            .param(NAME)
            .returns(
                "api",
                vec![
                    field("name", "string", "the name of the API"),
                    field("description", "string", "what the API does"),
                    field("isasync", "boolean", "true when the API answers with a job"),
                    field("params", "list", "the API's parameters"),
                    field("response", "list", "the fields of the API's response"),
                ],
            )
            .since("3.0.0")
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListApis {
            name: args.get(&NAME)?,
        })
    }
}

impl SyncCommand for ListApis {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let apis: Vec<Value> = ctx
            .app
            .registry
            .all()
            .filter(|spec| spec.allows(ctx.caller.role))
            .filter(|spec| self.name.as_deref().is_none_or(|n| n == spec.name))
            .map(api_entry)
            .collect();
        Ok(Reply::List {
            count: apis.len() as u64,
            items: apis,
        })
    }
}

/// One command as `listApis` shows it (CloudStack's `ApiDiscoveryResponse`).
fn api_entry(spec: &CommandSpec) -> Value {
    let params: Vec<Value> = spec
        .params
        .iter()
        .map(|p| {
            json!({
                "name": p.name,
                "description": p.description,
                "type": p.ty.name(),
                "length": p.length,
                "required": p.required,
                "since": p.since,
                "related": "",
            })
        })
        .collect();
    let response: Vec<Value> = spec
        .response
        .iter()
        .map(|f| json!({ "name": f.name, "description": f.description, "type": f.ty }))
        .collect();
    json!({
        "name": spec.name,
        "description": spec.description,
        "since": spec.since,
        "isasync": spec.kind != Kind::Sync,
        "related": "",
        "type": "",
        "params": params,
        "response": response,
    })
}
