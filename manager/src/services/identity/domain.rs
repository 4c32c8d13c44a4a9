//! Domains: `createDomain`, `listDomains`, `deleteDomain`.

use serde_json::json;

use super::views::{domain_fields, domain_view};
use super::{domain_param, paging, spec};
use crate::error::Error;
use crate::server::jobs::JobBody;
use crate::server::registry::{ADMINS, ALL, CommandSpec, Kind, ParamType::*, opt, req};
use crate::server::{Reply, Role, page};
use crate::store::{self, account, domain};
use crate::{handler, job_body};

/// The domain commands.
pub(super) fn commands() -> Vec<CommandSpec> {
    let mut list_domains = vec![
        opt("id", Uuid, "the ID of the domain"),
        opt("name", String, "the name of the domain"),
        opt("level", Integer, "the level of the domains"),
    ];
    list_domains.extend(paging());
    vec![
        spec(
            "createDomain",
            "Creates a domain below a parent domain",
            Kind::Sync,
            ADMINS,
            vec![
                req("name", String, "the name of the domain"),
                opt(
                    "parentdomainid",
                    Uuid,
                    "the parent domain; default the caller's",
                ),
                opt(
                    "networkdomain",
                    String,
                    "the network domain of the domain's networks",
                ),
            ],
            "domain",
            domain_fields(),
            create_domain,
        ),
        spec(
            "listDomains",
            "Lists domains",
            Kind::Sync,
            ALL,
            list_domains,
            "domain",
            domain_fields(),
            list_domains_handler,
        ),
        spec(
            "deleteDomain",
            "Deletes a domain; with cleanup=true also its sub-domains and accounts",
            Kind::Async,
            ADMINS,
            vec![
                req("id", Uuid, "the ID of the domain"),
                opt(
                    "cleanup",
                    Boolean,
                    "also delete the domain's sub-domains and accounts",
                ),
            ],
            "domain",
            vec![],
            delete_domain,
        ),
    ]
}

/// The job bodies of the domain commands.
pub(super) fn job_bodies() -> Vec<(&'static str, JobBody)> {
    vec![("deleteDomain", delete_domain_job)]
}

handler!(create_domain, |ctx, params| {
    let name = params.required_string(ctx.command, "name")?;
    let parent = domain_param(ctx, params, "parentdomainid").await?;
    let created = domain::create(
        &ctx.app.db,
        domain::NewDomain {
            parent_id: parent.id,
            name: name.clone(),
            network_domain: params.string("networkdomain")?,
        },
    )
    .await
    .map_err(|e| match e {
        store::StoreError::Duplicate(_) => Error::invalid(format!(
            "Domain with name {name} already exists for the parent {}",
            parent.uuid
        )),
        other => other.into(),
    })?;
    Ok(Reply::Object(domain_view(ctx, &created).await?))
});

handler!(list_domains_handler, |ctx, params| {
    let caller = &ctx.caller;
    let mut filter = domain::DomainFilter {
        uuid: params.uuid("id")?.map(|u| u.to_string()),
        name: params.string("name")?,
        level: params.long("level")?,
        keyword: params.string("keyword")?,
        ..Default::default()
    };
    match caller.role {
        Role::User => filter.path_prefix = Some(caller.domain_path.clone()),
        _ => filter.path_prefix = Some(caller.domain_path.clone()),
    }
    let listed = domain::list(&ctx.app.db, &filter, page(ctx, params).await?).await?;
    let mut items = Vec::new();
    for d in listed
        .items
        .iter()
        .filter(|d| caller.role != Role::User || d.path == caller.domain_path)
    {
        items.push(domain_view(ctx, d).await?);
    }
    let count = if caller.role == Role::User {
        items.len() as u64
    } else {
        listed.total as u64
    };
    Ok(Reply::List { count, items })
});

handler!(delete_domain, |ctx, params| {
    let d = domain_param(ctx, params, "id").await?;
    if d.parent_id.is_none() || d.id == ctx.caller.domain_id {
        return Err(Error::invalid(
            "The ROOT domain and the caller's own domain cannot be deleted",
        ));
    }
    let cleanup = params.boolean("cleanup")?.unwrap_or(false);
    let job_id = ctx
        .submit_job(
            json!({ "id": d.id, "cleanup": cleanup }),
            Some(("Domain", &d.uuid)),
            format!("domain:{}", d.id),
        )
        .await?;
    Ok(Reply::Job { job_id })
});

job_body!(delete_domain_job, |job, info| {
    let db = &job.app.db;
    let id = info["id"].as_i64().unwrap_or_default();
    let d = domain::get_by_id(db, id)
        .await?
        .ok_or_else(|| Error::invalid("the domain is gone"))?;
    if info["cleanup"].as_bool() == Some(true) {
        // The VMs and VPCs of every account of the subtree go first (routers
        // are not transactional); then the rows, in one transaction.
        for sub in domain::subtree(db, &d.path).await? {
            let accounts = account::list(
                db,
                &account::AccountFilter {
                    domain_id: Some(sub.id),
                    ..Default::default()
                },
                store::Page::ALL,
            )
            .await?;
            for a in &accounts.items {
                crate::provision::vpc::purge_account(db, &job.app.network, a.id).await?;
            }
        }
        // One transaction: a failure part-way leaves the whole subtree as it
        // was, not half its accounts gone.
        let mut tx = db.begin().await?;
        // Deepest first, so each domain is empty when its turn comes.
        let mut all = domain::subtree(&mut tx, &d.path).await?;
        all.sort_by_key(|x| std::cmp::Reverse(x.level));
        for sub in &all {
            let accounts = account::list(
                &mut tx,
                &account::AccountFilter {
                    domain_id: Some(sub.id),
                    ..Default::default()
                },
                store::Page::ALL,
            )
            .await?;
            for a in &accounts.items {
                account::remove(&mut tx, a.id).await?;
            }
            domain::remove(&mut tx, sub.id).await?;
        }
        tx.commit().await?;
    } else {
        domain::remove(db, d.id).await.map_err(|e| match e {
            store::StoreError::Conflict(_) => Error::in_use(format!(
                "Domain {} still has sub-domains or accounts; use cleanup=true",
                d.uuid
            )),
            other => other.into(),
        })?;
    }
    Ok(json!({ "success": true }))
});
