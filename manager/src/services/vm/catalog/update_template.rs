//! `updateTemplate`: a root admin renames a template or makes it
//! password-enabled (`passwordenabled`: its VMs take a password from the
//! router's password server). The built-in templates belong to the system,
//! so no other caller owns one to update.

use serde_json::json;
use uuid::Uuid;

use super::templates::{template_fields, template_view};
use crate::error::Error;
use crate::rules;
use crate::server::command::{Arg, Args, Command, Flag, Id, Spec, SyncCommand, Text};
use crate::server::registry::ROOT;
use crate::server::{Ctx, Reply};
use crate::store::vm;

const ID: Arg<Id> = Arg::req("id", "the ID of the template");
const NAME: Arg<Text> = Arg::opt("name", "the new name of the template");
const DISPLAY_TEXT: Arg<Text> = Arg::opt("displaytext", "the new description of the template");
const PASSWORD_ENABLED: Arg<Flag> = Arg::opt(
    "passwordenabled",
    "true if the template supports the password reset feature",
);

/// `updateTemplate`.
pub struct UpdateTemplate {
    id: Uuid,
    update: vm::TemplateUpdate,
}

impl Command for UpdateTemplate {
    const NAME: &'static str = "updateTemplate";

    fn spec() -> Spec {
        Spec::new("Updates a template: its name, description and password support")
            .roles(ROOT)
            .param(ID)
            .param(NAME)
            .param(DISPLAY_TEXT)
            .param(PASSWORD_ENABLED)
            .returns("template", template_fields())
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(UpdateTemplate {
            id: args.need(&ID)?,
            update: vm::TemplateUpdate {
                name: args.text(&NAME)?,
                display_text: args.text(&DISPLAY_TEXT)?,
                enable_password: args.get(&PASSWORD_ENABLED)?,
            },
        })
    }
}

impl SyncCommand for UpdateTemplate {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let t = vm::template_by_uuid(db, self.id)
            .await?
            .filter(|t| t.removed.is_none())
            .ok_or_else(|| Error::invalid_id(ID.name(), self.id))?;
        for (param, value) in [
            (NAME.name(), &self.update.name),
            (DISPLAY_TEXT.name(), &self.update.display_text),
        ] {
            if let Some(v) = value {
                if v.trim().is_empty() {
                    return Err(Error::invalid(format!("{param} cannot be empty")));
                }
                rules::check_length(param, v, rules::MAX_DISPLAY_TEXT_LEN)?;
            }
        }
        vm::update_template(db, t.id, &self.update).await?;
        let t = vm::template_by_id(db, t.id)
            .await?
            .ok_or_else(|| Error::invalid_id(ID.name(), self.id))?;
        Ok(Reply::Object(json!(template_view(
            &t,
            None,
            ctx.app.network.hypervisor(),
        ))))
    }
}
