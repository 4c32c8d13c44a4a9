//! What VMs are deployed from (§2.10): `listServiceOfferings` and
//! `listTemplates`. Both lists are the built-in rows of the schema; every
//! template is public and belongs to the system.

use serde_json::{Value, json};

use crate::error::Error;
use crate::handler;
use crate::server::registry::{ALL, CommandSpec, ParamType::*, field, opt, req};
use crate::server::{Reply, Role, date, page, page_of};
use crate::store::{Page, vm, zone};

pub(super) fn commands() -> Vec<CommandSpec> {
    let paging = || {
        vec![
            opt("keyword", String, "a substring of the name or description"),
            opt("page", Integer, "the page to return"),
            opt("pagesize", Integer, "the number of rows per page"),
            opt("domainid", Uuid, "accepted; every row is public"),
            opt("isrecursive", Boolean, "accepted; every row is public"),
            opt("listall", Boolean, "accepted; every row is public"),
        ]
    };
    let mut offering_params = vec![
        opt("id", Uuid, "the ID of the service offering"),
        opt("name", String, "the name of the service offering"),
        opt(
            "issystem",
            Boolean,
            "true: system offerings (none are listed)",
        ),
        opt(
            "zoneid",
            Uuid,
            "only offerings usable in this zone (all are)",
        ),
        opt(
            "virtualmachineid",
            Uuid,
            "accepted; every offering fits every VM",
        ),
    ];
    offering_params.extend(paging());
    let mut template_params = vec![
        req(
            "templatefilter",
            String,
            "featured, self, selfexecutable, sharedexecutable, executable, community or all \
             (admins)",
        ),
        opt("id", Uuid, "the ID of the template"),
        opt("name", String, "the name of the template"),
        opt("zoneid", Uuid, "only templates of this zone (all are)"),
        opt(
            "hypervisor",
            String,
            "accepted; templates are for namespaces",
        ),
    ];
    template_params.extend(paging());
    vec![
        CommandSpec {
            name: "listServiceOfferings",
            description: "Lists the service offerings of VMs",
            kind: crate::server::Kind::Sync,
            roles: ALL,
            params: offering_params,
            object: "serviceoffering",
            response: vec![
                field("id", "string", "the ID of the service offering"),
                field("name", "string", "the name of the service offering"),
                field("displaytext", "string", "the description"),
                field("cpunumber", "integer", "the number of CPU cores"),
                field("cpuspeed", "integer", "the CPU speed in MHz"),
                field("memory", "integer", "the memory in MB"),
                field("created", "date", "when the offering was created"),
            ],
            since: "",
            handler: list_service_offerings,
            job: None,
        },
        CommandSpec {
            name: "listTemplates",
            description: "Lists the templates VMs can be deployed from",
            kind: crate::server::Kind::Sync,
            roles: ALL,
            params: template_params,
            object: "template",
            response: vec![
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
            ],
            since: "",
            handler: list_templates,
            job: None,
        },
    ]
}

fn offering_view(o: &vm::ServiceOffering) -> Value {
    json!({
        "id": o.uuid,
        "name": o.name,
        "displaytext": o.display_text,
        "cpunumber": o.cpu,
        "cpuspeed": o.speed,
        "memory": o.ram_size,
        "created": date(o.created),
        "storagetype": "shared",
        "offerha": false,
        "limitcpuuse": false,
        "isvolatile": false,
        "issystem": false,
        "defaultuse": o.is_default,
        "iscustomized": false,
        "hasannotations": false,
    })
}

handler!(list_service_offerings, |ctx, params| {
    if params.boolean("issystem")? == Some(true) {
        return Ok(Reply::List {
            count: 0,
            items: vec![],
        });
    }
    let filter = vm::CatalogFilter {
        uuid: params.uuid("id")?.map(|u| u.to_string()),
        name: params.string("name")?.filter(|n| !n.is_empty()),
        keyword: params.string("keyword")?.filter(|k| !k.is_empty()),
        ..Default::default()
    };
    let page = page(ctx, params).await?;
    let listed = vm::list_offerings(&ctx.app.db, &filter, page).await?;
    Ok(Reply::List {
        count: u64::try_from(listed.total).unwrap_or_default(),
        items: listed.items.iter().map(offering_view).collect(),
    })
});

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

handler!(list_templates, |ctx, params| {
    let db = &ctx.app.db;
    let filter_text = params.required_string(ctx.command, "templatefilter")?;
    let template_filter = TemplateFilter::parse(&filter_text)?;
    if template_filter == TemplateFilter::All && ctx.caller.role == Role::User {
        return Err(Error::invalid("Filter all can be specified by admin only"));
    }
    let z = match params.uuid("zoneid")? {
        Some(id) => match zone::get_by_uuid(db, &id.to_string()).await? {
            Some(z) if z.removed.is_none() => Some(z),
            _ => {
                return Ok(Reply::List {
                    count: 0,
                    items: vec![],
                });
            }
        },
        None => None,
    };
    let filter = vm::CatalogFilter {
        uuid: params.uuid("id")?.map(|u| u.to_string()),
        name: params.string("name")?.filter(|n| !n.is_empty()),
        keyword: params.string("keyword")?.filter(|k| !k.is_empty()),
        ..Default::default()
    };
    let page = page(ctx, params).await?;
    let all = vm::list_templates(db, &filter, Page::ALL).await?.items;
    let shown: Vec<vm::Template> = all
        .into_iter()
        .filter(|t| template_filter.shows(t))
        .collect();
    let count = shown.len() as u64;
    let items = page_of(shown, page)
        .iter()
        .map(|t| {
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
                "passwordenabled": false,
                "sshkeyenabled": false,
                "isextractable": false,
                "created": date(t.created),
                "tags": [],
            });
            if let Some(z) = &z {
                v["zoneid"] = json!(z.uuid);
                v["zonename"] = json!(z.name);
            }
            v
        })
        .collect();
    Ok(Reply::List { count, items })
});

#[cfg(test)]
mod tests {
    use super::*;

    fn template(public: bool, featured: bool) -> vm::Template {
        vm::Template {
            id: 1,
            uuid: "u".into(),
            name: "t".into(),
            display_text: std::string::String::new(),
            format: "NETNS".into(),
            os_type: "Linux".into(),
            is_public: public,
            is_featured: featured,
            created: 0,
            removed: None,
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
