//! `updateConfiguration`: sets (or, empty, resets) one global key's value,
//! checked against the key's rule.

use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand, Text};
use crate::server::registry::ROOT;
use crate::server::{Ctx, Reply};
use crate::store::config;

use super::{CONFIG_FIELDS, MAX_VALUE_LENGTH, checked_value, config_view};

const NAME: Arg<Text> = Arg::req("name", "the name of the configuration");
const VALUE: Arg<Text> = Arg::opt(
    "value",
    "the new value; absent or empty restores the default",
)
.length(MAX_VALUE_LENGTH);
const ZONE: Arg<Id> = Arg::opt("zoneid", "refused: only global values are stored");
const ACCOUNT: Arg<Id> = Arg::opt("accountid", "refused: only global values are stored");
const DOMAIN: Arg<Id> = Arg::opt("domainid", "refused: only global values are stored");

/// `updateConfiguration`.
pub struct UpdateConfiguration {
    name: String,
    /// None when absent or empty: the default is restored.
    value: Option<String>,
    /// The scope parameters given (not empty), refused by `handle`.
    scoped: Vec<&'static str>,
}

impl Command for UpdateConfiguration {
    const NAME: &'static str = "updateConfiguration";

    fn spec() -> Spec {
        Spec::new("Sets a global configuration value; an empty value restores the default")
            .roles(ROOT)
            .param(NAME)
            .param(VALUE)
            .param(ZONE)
            .param(ACCOUNT)
            .param(DOMAIN)
            .returns("configuration", CONFIG_FIELDS)
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        let mut scoped = Vec::new();
        for arg in [ZONE, ACCOUNT, DOMAIN] {
            if args.get(&arg)?.is_some() {
                scoped.push(arg.name());
            }
        }
        Ok(UpdateConfiguration {
            name: args.need(&NAME)?,
            // Longer than the 255 characters of other strings.
            value: args
                .params()
                .string_max(VALUE.name(), MAX_VALUE_LENGTH as usize)?
                .filter(|v| !v.is_empty()),
            scoped,
        })
    }
}

impl SyncCommand for UpdateConfiguration {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let name = self.name;
        if let Some(scoped) = self.scoped.first() {
            return Err(Error::invalid(format!(
                "{scoped} is not supported: this manager stores global configuration values only"
            )));
        }
        let db = &ctx.app.db;
        if config::get(db, &name).await?.is_none() {
            return Err(Error::invalid(format!(
                "The configuration {name} does not exist"
            )));
        }
        let stored = match self.value {
            Some(v) => Some(checked_value(&name, &v)?),
            None => None,
        };
        let updated = config::update(db, &name, stored.as_deref())
            .await?
            .ok_or_else(|| Error::invalid(format!("The configuration {name} does not exist")))?;
        tracing::info!(name = %name, value = ?updated.value, by = %ctx.caller.account_name, "configuration updated");
        Ok(Reply::Object(config_view(&updated, "global")))
    }
}
