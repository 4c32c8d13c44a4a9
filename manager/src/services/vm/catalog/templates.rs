//! `listTemplates`: the templates VMs can be deployed from, by
//! CloudStack's template filters.

use serde_json::{Value, json};
use uuid::Uuid;

use super::catalog_specs;
use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Id, Spec, SyncCommand, Text};
use crate::server::list_paging::Paging;
use crate::server::registry::{ALL, FieldSpec, field};
use crate::server::{Ctx, Reply, Role, date, page_of};
use crate::store::{Page, vm, zone};

const FILTER: Arg<Text> = Arg::req(
    "templatefilter",
    "featured, self, selfexecutable, sharedexecutable, executable, community or all \
     (admins)",
);
const ID: Arg<Id> = Arg::opt("id", "the ID of the template");
const NAME: Arg<Text> = Arg::opt("name", "the name of the template");
const ZONE: Arg<Id> = Arg::opt("zoneid", "only templates of this zone (all are)");
const HYPERVISOR: Arg<Text> = Arg::opt("hypervisor", "accepted; templates are for namespaces");

/// `listTemplates`.
pub struct ListTemplates {
    filter: String,
    id: Option<Uuid>,
    name: Option<String>,
    zone: Option<Uuid>,
    paging: Paging,
}

impl Command for ListTemplates {
    const NAME: &'static str = "listTemplates";

    fn spec() -> Spec {
        Spec::new("Lists the templates VMs can be deployed from")
            .roles(ALL)
            .param(FILTER)
            .param(ID)
            .param(NAME)
            .param(ZONE)
            .param(HYPERVISOR)
            .params(catalog_specs())
            .returns("template", template_fields())
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListTemplates {
            filter: args.need(&FILTER)?,
            id: args.get(&ID)?,
            name: args.text(&NAME)?,
            zone: args.get(&ZONE)?,
            paging: Paging::parse(args)?,
        })
    }
}

impl SyncCommand for ListTemplates {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let template_filter = TemplateFilter::parse(&self.filter)?;
        if template_filter == TemplateFilter::All && ctx.caller.role == Role::User {
            return Err(Error::invalid("Filter all can be specified by admin only"));
        }
        let z = match self.zone {
            Some(id) => match zone::get_by_uuid(db, id).await? {
                Some(z) if z.removed.is_none() => Some(z),
                _ => {
                    return Ok(Reply::empty_list());
                }
            },
            None => None,
        };
        let filter = vm::CatalogFilter {
            uuid: self.id,
            name: self.name,
            keyword: self.paging.keyword.clone(),
            ..Default::default()
        };
        let page = self.paging.page(ctx).await?;
        let all = vm::list_templates(db, &filter, Page::ALL).await?.items;
        let shown: Vec<vm::Template> = all
            .into_iter()
            .filter(|t| template_filter.shows(t))
            .collect();
        let count = shown.len() as u64;
        // CloudStack names the hypervisor of every template; clients (Ansible's
        // cs_instance) match it against the zone's, so it is what runs the VMs here.
        let hypervisor = ctx.app.network.hypervisor();
        let items = page_of(shown, page)
            .iter()
            .map(|t| template_view(t, z.as_ref(), hypervisor))
            .collect();
        Ok(Reply::List { count, items })
    }
}

/// CloudStack's template filters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TemplateFilter {
    Featured,
    SelfOwned,
    SelfExecutable,
    SharedExecutable,
    Executable,
    Community,
    All,
}

impl TemplateFilter {
    fn parse(text: &str) -> Result<Self, Error> {
        Ok(match text.trim().to_ascii_lowercase().as_str() {
            "featured" => TemplateFilter::Featured,
            "self" => TemplateFilter::SelfOwned,
            "selfexecutable" => TemplateFilter::SelfExecutable,
            "sharedexecutable" => TemplateFilter::SharedExecutable,
            "executable" => TemplateFilter::Executable,
            "community" => TemplateFilter::Community,
            "all" => TemplateFilter::All,
            _ => {
                return Err(Error::invalid(format!(
                    "Invalid template filter {text:?}: use one of featured, self, \
                     selfexecutable, sharedexecutable, executable, community, all"
                )));
            }
        })
    }

    /// Whether a system-owned template shows under this filter.
    fn shows(self, t: &vm::Template) -> bool {
        match self {
            TemplateFilter::Featured => t.is_public && t.is_featured,
            // Templates of the caller's own account: the built-in ones
            // belong to the system.
            TemplateFilter::SelfOwned
            | TemplateFilter::SelfExecutable
            | TemplateFilter::SharedExecutable => false,
            TemplateFilter::Executable => t.is_public,
            TemplateFilter::Community => t.is_public && !t.is_featured,
            TemplateFilter::All => true,
        }
    }
}

/// A template as listTemplates and updateTemplate show it; with the zone's
/// id and name when the list asked for one zone.
pub(super) fn template_view(t: &vm::Template, z: Option<&zone::Zone>, hypervisor: &str) -> Value {
    let mut v = json!({
        "id": t.uuid,
        "name": t.name,
        "displaytext": t.display_text,
        "ispublic": t.is_public,
        "isfeatured": t.is_featured,
        "isready": true,
        "status": "Download Complete",
        "format": t.format,
        "ostypename": t.os_type,
        "account": "system",
        "templatetype": "BUILTIN",
        "crossZones": true,
        "bootable": true,
        "passwordenabled": t.enable_password,
        "sshkeyenabled": false,
        "isextractable": false,
        "created": date(t.created),
        "tags": [],
        "hypervisor": hypervisor,
    });
    if let Some(z) = z {
        v["zoneid"] = json!(z.uuid);
        v["zonename"] = json!(z.name);
    }
    v
}

/// The fields of a template in a response.
pub(super) fn template_fields() -> Vec<FieldSpec> {
    vec![
        field("id", "string", "the ID of the template"),
        field("name", "string", "the name of the template"),
        field("displaytext", "string", "the description"),
        field("ispublic", "boolean", "whether every account may use it"),
        field("isfeatured", "boolean", "whether it is featured"),
        field("isready", "boolean", "whether it can be deployed"),
        field("format", "string", "the template format"),
        field("ostypename", "string", "the OS type"),
        field("account", "string", "the owner account"),
        field("created", "date", "when the template was created"),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(public: bool, featured: bool) -> vm::Template {
        vm::Template {
            id: 1,
            uuid: uuid::Uuid::nil(),
            name: "t".into(),
            display_text: std::string::String::new(),
            format: "NETNS".into(),
            os_type: "Linux".into(),
            is_public: public,
            is_featured: featured,
            enable_password: false,
            created: 0,
            removed: None,
            size: 1 << 30,
        }
    }

    #[test]
    fn template_filters_follow_cloudstack() {
        let featured = template(true, true);
        let community = template(true, false);
        let private = template(false, false);
        assert!(TemplateFilter::parse("Featured").unwrap().shows(&featured));
        assert!(!TemplateFilter::Featured.shows(&community));
        assert!(TemplateFilter::Community.shows(&community));
        assert!(!TemplateFilter::Community.shows(&featured));
        assert!(TemplateFilter::Executable.shows(&featured));
        assert!(!TemplateFilter::Executable.shows(&private));
        assert!(!TemplateFilter::SelfOwned.shows(&featured));
        assert!(TemplateFilter::All.shows(&private));
        assert_eq!(
            TemplateFilter::parse("mine")
                .map_err(crate::api::ApiError::from)
                .unwrap_err()
                .code,
            431
        );
    }
}
