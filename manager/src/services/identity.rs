//! Domains, accounts and users (CloudStack reference §2.10, §1.11).

use serde_json::{Value, json};

use crate::api::{ApiError, Params};
use crate::server::registry::{
    ADMINS, ALL, CommandSpec, FieldSpec, Kind, ParamType::*, field, opt, req,
};
use crate::server::{Ctx, Reply, Role, date, page};
use crate::store::{self, account, domain, user};
use crate::{handler, job_body};

fn role_name(account_type: i64) -> &'static str {
    match Role::of_account_type(account_type) {
        Role::Admin => "Admin",
        Role::DomainAdmin => "DomainAdmin",
        Role::User => "User",
    }
}

fn denied(ctx: &Ctx, what: &str) -> ApiError {
    ApiError::permission_denied(format!(
        "Account {} does not have permission to access {what}",
        ctx.caller.account_name
    ))
}

/// The live domain named by parameter `name`, which the caller must cover;
/// the caller's own domain when the parameter is absent.
async fn domain_param(ctx: &Ctx, params: &Params, name: &str) -> Result<domain::Domain, ApiError> {
    let Some(id) = params.uuid(name)? else {
        return domain::get_by_id(&ctx.app.db, ctx.caller.domain_id)
            .await?
            .ok_or_else(|| ApiError::internal("caller's domain is gone"));
    };
    let id = id.to_string();
    let found = domain::get_by_uuid(&ctx.app.db, &id)
        .await?
        .filter(|d| d.removed.is_none());
    let d = found.ok_or_else(|| ApiError::invalid_id(name, &id))?;
    if !ctx.caller.covers_domain(&d.path) {
        return Err(denied(ctx, &format!("domain {id}")));
    }
    Ok(d)
}

/// The live account named by `id` or by `account` + `domainid`, which the
/// caller must cover.
async fn account_param(
    ctx: &Ctx,
    params: &Params,
    id_name: &str,
) -> Result<account::Account, ApiError> {
    let found = match (params.uuid(id_name)?, params.string("account")?) {
        (Some(id), _) => {
            let id = id.to_string();
            let a = account::get_by_uuid(&ctx.app.db, &id)
                .await?
                .filter(|a| a.removed.is_none());
            a.ok_or_else(|| ApiError::invalid_id(id_name, &id))?
        }
        (None, Some(name)) => {
            let d = domain_param(ctx, params, "domainid").await?;
            let a = account::get_by_name(&ctx.app.db, d.id, &name).await?;
            a.ok_or_else(|| {
                ApiError::param(format!(
                    "Unable to find account {name} in domain {}",
                    d.uuid
                ))
            })?
        }
        (None, None) => return Err(ApiError::missing_param(ctx.command, id_name)),
    };
    if !ctx.caller.covers(found.id, &found.domain_path) {
        return Err(denied(ctx, &format!("account {}", found.uuid)));
    }
    Ok(found)
}

async fn domain_view(ctx: &Ctx, d: &domain::Domain) -> Result<Value, ApiError> {
    let db = &ctx.app.db;
    let parent = match d.parent_id {
        Some(p) => domain::get_by_id(db, p).await?,
        None => None,
    };
    let children = domain::list(
        db,
        &domain::DomainFilter {
            parent_id: Some(d.id),
            ..Default::default()
        },
        store::Page::first(1),
    )
    .await?;
    Ok(json!({
        "id": d.uuid,
        "name": d.name,
        "level": d.level,
        "parentdomainid": parent.as_ref().map(|p| p.uuid.clone()),
        "parentdomainname": parent.as_ref().map(|p| p.name.clone()),
        "haschild": children.total > 0,
        "path": d.display_path(),
        "networkdomain": d.network_domain,
        "state": "Active",
        "created": date(d.created),
    }))
}

fn user_view(u: &user::User, a: &account::Account, d: &domain::Domain) -> Value {
    json!({
        "id": u.uuid,
        "username": u.username,
        "firstname": u.firstname,
        "lastname": u.lastname,
        "email": u.email,
        "account": a.account_name,
        "accountid": a.uuid,
        "accounttype": a.account_type,
        "roletype": role_name(a.account_type),
        "domainid": d.uuid,
        "domain": d.name,
        "state": u.state,
        "apikey": u.api_key,
        "created": date(u.created),
    })
}

async fn account_view(ctx: &Ctx, a: &account::Account) -> Result<Value, ApiError> {
    let db = &ctx.app.db;
    let d = domain::get_by_id(db, a.domain_id)
        .await?
        .ok_or_else(|| ApiError::internal("account without domain"))?;
    let users = user::list(
        db,
        &user::UserFilter {
            account_id: Some(a.id),
            ..Default::default()
        },
        store::Page::ALL,
    )
    .await?;
    Ok(json!({
        "id": a.uuid,
        "name": a.account_name,
        "accounttype": a.account_type,
        "roletype": role_name(a.account_type),
        "domainid": d.uuid,
        "domain": d.name,
        "domainpath": d.display_path(),
        "state": a.state,
        "networkdomain": a.network_domain,
        "created": date(a.created),
        "user": users.items.iter().map(|u| user_view(u, a, &d)).collect::<Vec<_>>(),
    }))
}

fn domain_fields() -> Vec<FieldSpec> {
    vec![
        field("id", "string", "the ID of the domain"),
        field("name", "string", "the name of the domain"),
        field("level", "integer", "the depth of the domain below ROOT"),
        field("parentdomainid", "string", "the ID of the parent domain"),
        field("path", "string", "the path of the domain"),
        field(
            "haschild",
            "boolean",
            "whether the domain has child domains",
        ),
        field(
            "networkdomain",
            "string",
            "the network domain of the domain",
        ),
    ]
}

fn account_fields() -> Vec<FieldSpec> {
    vec![
        field("id", "string", "the ID of the account"),
        field("name", "string", "the name of the account"),
        field(
            "accounttype",
            "integer",
            "0 user, 1 root admin, 2 domain admin",
        ),
        field("roletype", "string", "the role of the account"),
        field("domainid", "string", "the ID of the account's domain"),
        field("state", "string", "enabled or disabled"),
        field("user", "list", "the users of the account"),
    ]
}

fn user_fields() -> Vec<FieldSpec> {
    vec![
        field("id", "string", "the ID of the user"),
        field("username", "string", "the user name"),
        field("accountid", "string", "the ID of the user's account"),
        field("domainid", "string", "the ID of the user's domain"),
        field("state", "string", "enabled or disabled"),
        field("apikey", "string", "the user's API key"),
    ]
}

fn paging() -> Vec<crate::server::registry::ParamSpec> {
    vec![
        opt("keyword", String, "a substring to match"),
        opt("page", Integer, "the page to return"),
        opt("pagesize", Integer, "the number of objects per page"),
        opt(
            "listall",
            Boolean,
            "everything the caller may see, not only its own",
        ),
        opt("isrecursive", Boolean, "include sub-domains"),
    ]
}

/// The commands of this module.
pub fn commands() -> Vec<CommandSpec> {
    let mut list_domains = vec![
        opt("id", Uuid, "the ID of the domain"),
        opt("name", String, "the name of the domain"),
        opt("level", Integer, "the level of the domains"),
    ];
    list_domains.extend(paging());
    let mut list_accounts = vec![
        opt("id", Uuid, "the ID of the account"),
        opt("name", String, "the name of the account"),
        opt("domainid", Uuid, "the accounts of this domain"),
        opt(
            "accounttype",
            Integer,
            "0 user, 1 root admin, 2 domain admin",
        ),
        opt("state", String, "enabled or disabled"),
    ];
    list_accounts.extend(paging());
    let mut list_users = vec![
        opt("id", Uuid, "the ID of the user"),
        opt("username", String, "the user name"),
        opt(
            "account",
            String,
            "the users of this account (with domainid)",
        ),
        opt("domainid", Uuid, "the users of this domain"),
        opt("state", String, "enabled or disabled"),
    ];
    list_users.extend(paging());
    let user_params = |extra: Vec<crate::server::registry::ParamSpec>| {
        let mut p = vec![
            req("username", String, "the unique user name in the domain"),
            req(
                "password",
                String,
                "the clear-text password, sent over a trusted connection",
            ),
            req("email", String, "the e-mail address of the user"),
            req("firstname", String, "the first name of the user"),
            req("lastname", String, "the last name of the user"),
            opt("domainid", Uuid, "the domain; default the caller's"),
        ];
        p.extend(extra);
        p
    };
    let spec = |name, description, kind, roles, params, object, response, handler| CommandSpec {
        name,
        description,
        kind,
        roles,
        params,
        object,
        response,
        since: "",
        handler,
    };
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
        spec(
            "createAccount",
            "Creates an account with its first user",
            Kind::Sync,
            ADMINS,
            user_params(vec![
                opt(
                    "accounttype",
                    Integer,
                    "0 user (default), 1 root admin, 2 domain admin",
                ),
                opt("account", String, "the account name; default the user name"),
                opt(
                    "networkdomain",
                    String,
                    "the network domain of the account's networks",
                ),
            ]),
            "account",
            account_fields(),
            create_account,
        ),
        spec(
            "listAccounts",
            "Lists accounts",
            Kind::Sync,
            ALL,
            list_accounts,
            "account",
            account_fields(),
            list_accounts_handler,
        ),
        spec(
            "updateAccount",
            "Renames an account or changes its network domain",
            Kind::Sync,
            ADMINS,
            vec![
                opt("id", Uuid, "the ID of the account"),
                opt("account", String, "the account name (with domainid)"),
                opt("domainid", Uuid, "the domain of the account"),
                opt("newname", String, "the new name of the account"),
                opt("networkdomain", String, "the new network domain"),
            ],
            "account",
            account_fields(),
            update_account,
        ),
        spec(
            "disableAccount",
            "Disables an account: its users can no longer call the API",
            Kind::Async,
            ADMINS,
            vec![
                opt("id", Uuid, "the ID of the account"),
                opt("account", String, "the account name (with domainid)"),
                opt("domainid", Uuid, "the domain of the account"),
                req(
                    "lock",
                    Boolean,
                    "lock the account (only disabling is supported)",
                ),
            ],
            "account",
            account_fields(),
            disable_account,
        ),
        spec(
            "enableAccount",
            "Enables a disabled account",
            Kind::Sync,
            ADMINS,
            vec![
                opt("id", Uuid, "the ID of the account"),
                opt("account", String, "the account name (with domainid)"),
                opt("domainid", Uuid, "the domain of the account"),
            ],
            "account",
            account_fields(),
            enable_account,
        ),
        spec(
            "deleteAccount",
            "Deletes an account with its users",
            Kind::Async,
            ADMINS,
            vec![req("id", Uuid, "the ID of the account")],
            "account",
            vec![],
            delete_account,
        ),
        spec(
            "createUser",
            "Creates a user in an account",
            Kind::Sync,
            ADMINS,
            user_params(vec![req("account", String, "the account of the user")]),
            "user",
            user_fields(),
            create_user,
        ),
        spec(
            "listUsers",
            "Lists users",
            Kind::Sync,
            ALL,
            list_users,
            "user",
            user_fields(),
            list_users_handler,
        ),
        spec(
            "registerUserKeys",
            "Generates a new API key and secret key for a user",
            Kind::Sync,
            ALL,
            vec![req("id", Uuid, "the ID of the user")],
            "userkeys",
            vec![
                field("apikey", "string", "the API key"),
                field("secretkey", "string", "the secret key"),
            ],
            register_user_keys,
        ),
        spec(
            "getUserKeys",
            "Returns a user's API key and secret key",
            Kind::Sync,
            ALL,
            vec![req("id", Uuid, "the ID of the user")],
            "userkeys",
            vec![
                field("apikey", "string", "the API key"),
                field("secretkey", "string", "the secret key"),
            ],
            get_user_keys,
        ),
    ]
}

/// The job bodies of this module's async commands.
pub fn job_bodies() -> Vec<(&'static str, crate::server::jobs::JobBody)> {
    vec![
        ("deleteDomain", delete_domain_job),
        ("disableAccount", disable_account_job),
        ("deleteAccount", delete_account_job),
    ]
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
        store::StoreError::Duplicate(_) => ApiError::param(format!(
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
        return Err(ApiError::param(
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
        .ok_or_else(|| ApiError::param("the domain is gone"))?;
    if info["cleanup"].as_bool() == Some(true) {
        // Deepest first, so each domain is empty when its turn comes.
        let mut all = domain::subtree(db, &d.path).await?;
        all.sort_by_key(|x| std::cmp::Reverse(x.level));
        for sub in &all {
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
                account::remove(db, a.id).await?;
            }
            domain::remove(db, sub.id).await?;
        }
    } else {
        domain::remove(db, d.id).await.map_err(|e| match e {
            store::StoreError::Conflict(_) => ApiError::in_use(format!(
                "Domain {} still has sub-domains or accounts; use cleanup=true",
                d.uuid
            )),
            other => other.into(),
        })?;
    }
    Ok(json!({ "success": true }))
});

handler!(create_account, |ctx, params| {
    let account_type = params
        .integer("accounttype")?
        .map(i64::from)
        .unwrap_or(account::TYPE_USER);
    if ![
        account::TYPE_USER,
        account::TYPE_ADMIN,
        account::TYPE_DOMAIN_ADMIN,
    ]
    .contains(&account_type)
    {
        return Err(ApiError::param(
            "accounttype must be 0 (user), 1 (root admin) or 2 (domain admin)",
        ));
    }
    if account_type == account::TYPE_ADMIN && !ctx.caller.is_root_admin() {
        return Err(denied(ctx, "root admin accounts"));
    }
    let d = domain_param(ctx, params, "domainid").await?;
    let username = params.required_string(ctx.command, "username")?;
    let name = params
        .string("account")?
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| username.clone());
    let new_user = user::NewUser {
        account_id: 0,
        username,
        password: Some(params.required_string(ctx.command, "password")?),
        firstname: params.required_string(ctx.command, "firstname")?,
        lastname: params.required_string(ctx.command, "lastname")?,
        email: Some(params.required_string(ctx.command, "email")?),
    };
    let new_account = account::NewAccount {
        account_name: name.clone(),
        account_type,
        domain_id: d.id,
        network_domain: params.string("networkdomain")?,
    };
    let mut tx = ctx.app.db.begin().await?;
    let created = match account::create(&mut tx, new_account).await {
        Ok(a) => a,
        Err(store::StoreError::Duplicate(_)) => {
            return Err(ApiError::param(format!(
                "The account {name} already exists in domain {}",
                d.uuid
            )));
        }
        Err(e) => return Err(e.into()),
    };
    match user::create(
        &mut tx,
        user::NewUser {
            account_id: created.id,
            ..new_user
        },
    )
    .await
    {
        Ok(_) => {}
        Err(store::StoreError::Duplicate(_)) => {
            return Err(ApiError::param(format!(
                "The user name is already used in domain {}",
                d.uuid
            )));
        }
        Err(e) => return Err(e.into()),
    }
    tx.commit().await?;
    Ok(Reply::Object(account_view(ctx, &created).await?))
});

handler!(list_accounts_handler, |ctx, params| {
    let caller = &ctx.caller;
    let mut filter = account::AccountFilter {
        name: params.string("name")?,
        keyword: params.string("keyword")?,
        state: params.string("state")?,
        account_type: params.integer("accounttype")?.map(i64::from),
        uuids: params.uuid("id")?.map(|u| vec![u.to_string()]),
        ..Default::default()
    };
    let recursive = params.boolean("isrecursive")?.unwrap_or(false)
        || params.boolean("listall")?.unwrap_or(false);
    if caller.role == Role::User {
        filter.uuids = Some(vec![caller.account_uuid.clone()]).filter(|_| {
            filter
                .uuids
                .as_ref()
                .is_none_or(|u| u.contains(&caller.account_uuid))
        });
        if filter.uuids.is_none() {
            return Ok(Reply::List {
                count: 0,
                items: vec![],
            });
        }
    } else {
        let d = domain_param(ctx, params, "domainid").await?;
        if recursive || filter.uuids.is_some() {
            filter.domain_path_prefix = Some(d.path.clone());
        } else {
            filter.domain_id = Some(d.id);
        }
    }
    let listed = account::list(&ctx.app.db, &filter, page(ctx, params).await?).await?;
    let mut items = Vec::with_capacity(listed.items.len());
    for a in &listed.items {
        items.push(account_view(ctx, a).await?);
    }
    Ok(Reply::List {
        count: listed.total as u64,
        items,
    })
});

handler!(update_account, |ctx, params| {
    let a = account_param(ctx, params, "id").await?;
    let new_name = params.string("newname")?.filter(|n| !n.is_empty());
    let network_domain = params.string("networkdomain")?;
    account::update(
        &ctx.app.db,
        a.id,
        new_name.as_deref(),
        network_domain.as_deref(),
    )
    .await?;
    let updated = account::get_by_id(&ctx.app.db, a.id)
        .await?
        .ok_or_else(|| ApiError::internal("account vanished"))?;
    Ok(Reply::Object(account_view(ctx, &updated).await?))
});

/// Refuses changes to the caller's own account and to root admin accounts
/// for non-root callers.
fn check_state_change(ctx: &Ctx, a: &account::Account) -> Result<(), ApiError> {
    if a.id == ctx.caller.account_id {
        return Err(ApiError::param(
            "An account cannot disable or delete itself",
        ));
    }
    if a.account_type == account::TYPE_ADMIN && !ctx.caller.is_root_admin() {
        return Err(denied(ctx, &format!("account {}", a.uuid)));
    }
    Ok(())
}

handler!(disable_account, |ctx, params| {
    let a = account_param(ctx, params, "id").await?;
    check_state_change(ctx, &a)?;
    if params.boolean("lock")? != Some(true) {
        return Err(ApiError::param(
            "lock=true is required: this manager disables accounts by locking them",
        ));
    }
    let job_id = ctx
        .submit_job(
            json!({ "id": a.id }),
            Some(("Account", &a.uuid)),
            format!("account:{}", a.id),
        )
        .await?;
    Ok(Reply::Job { job_id })
});

job_body!(disable_account_job, |job, info| {
    let id = info["id"].as_i64().unwrap_or_default();
    account::set_state(&job.app.db, id, account::STATE_DISABLED).await?;
    let a = account::get_by_id(&job.app.db, id)
        .await?
        .ok_or_else(|| ApiError::param("the account is gone"))?;
    Ok(json!({ "account": { "id": a.uuid, "name": a.account_name, "state": a.state } }))
});

handler!(enable_account, |ctx, params| {
    let a = account_param(ctx, params, "id").await?;
    account::set_state(&ctx.app.db, a.id, account::STATE_ENABLED).await?;
    let updated = account::get_by_id(&ctx.app.db, a.id)
        .await?
        .ok_or_else(|| ApiError::internal("account vanished"))?;
    Ok(Reply::Object(account_view(ctx, &updated).await?))
});

handler!(delete_account, |ctx, params| {
    let a = account_param(ctx, params, "id").await?;
    check_state_change(ctx, &a)?;
    let job_id = ctx
        .submit_job(
            json!({ "id": a.id }),
            Some(("Account", &a.uuid)),
            format!("account:{}", a.id),
        )
        .await?;
    Ok(Reply::Job { job_id })
});

job_body!(delete_account_job, |job, info| {
    account::remove(&job.app.db, info["id"].as_i64().unwrap_or_default()).await?;
    Ok(json!({ "success": true }))
});

handler!(create_user, |ctx, params| {
    let d = domain_param(ctx, params, "domainid").await?;
    let name = params.required_string(ctx.command, "account")?;
    let a = account::get_by_name(&ctx.app.db, d.id, &name)
        .await?
        .ok_or_else(|| {
            ApiError::param(format!(
                "Unable to find account {name} in domain {}",
                d.uuid
            ))
        })?;
    let created = user::create(
        &ctx.app.db,
        user::NewUser {
            account_id: a.id,
            username: params.required_string(ctx.command, "username")?,
            password: Some(params.required_string(ctx.command, "password")?),
            firstname: params.required_string(ctx.command, "firstname")?,
            lastname: params.required_string(ctx.command, "lastname")?,
            email: Some(params.required_string(ctx.command, "email")?),
        },
    )
    .await
    .map_err(|e| match e {
        store::StoreError::Duplicate(_) => ApiError::param(format!(
            "The user name is already used in domain {}",
            d.uuid
        )),
        other => other.into(),
    })?;
    Ok(Reply::Object(user_view(&created, &a, &d)))
});

handler!(list_users_handler, |ctx, params| {
    let caller = &ctx.caller;
    let mut filter = user::UserFilter {
        uuid: params.uuid("id")?.map(|u| u.to_string()),
        username: params.string("username")?,
        keyword: params.string("keyword")?,
        ..Default::default()
    };
    if caller.role == Role::User {
        filter.account_id = Some(caller.account_id);
    } else if params.contains("account") {
        filter.account_id = Some(account_param(ctx, params, "accountid").await?.id);
    } else {
        filter.domain_path_prefix = Some(domain_param(ctx, params, "domainid").await?.path);
    }
    let listed = user::list(&ctx.app.db, &filter, page(ctx, params).await?).await?;
    let mut items = Vec::new();
    for u in &listed.items {
        let a = account::get_by_id(&ctx.app.db, u.account_id)
            .await?
            .ok_or_else(|| ApiError::internal("user without account"))?;
        let d = domain::get_by_id(&ctx.app.db, a.domain_id)
            .await?
            .ok_or_else(|| ApiError::internal("account without domain"))?;
        items.push(user_view(u, &a, &d));
    }
    Ok(Reply::List {
        count: listed.total as u64,
        items,
    })
});

/// The live user named by `id`, which the caller must cover: users only
/// themselves, admins the users of accounts they cover.
async fn user_param(ctx: &Ctx, params: &Params) -> Result<user::User, ApiError> {
    let id = params.required_uuid(ctx.command, "id")?.to_string();
    let u = user::get_by_uuid(&ctx.app.db, &id)
        .await?
        .filter(|u| u.removed.is_none())
        .ok_or_else(|| ApiError::invalid_id("id", &id))?;
    let a = account::get_by_id(&ctx.app.db, u.account_id)
        .await?
        .ok_or_else(|| ApiError::invalid_id("id", &id))?;
    let allowed = match ctx.caller.role {
        Role::User => u.id == ctx.caller.user_id,
        _ => ctx.caller.covers(a.id, &a.domain_path),
    };
    if !allowed {
        return Err(denied(ctx, &format!("user {id}")));
    }
    Ok(u)
}

handler!(register_user_keys, |ctx, params| {
    let u = user_param(ctx, params).await?;
    let (apikey, secretkey) = user::register_keys(&ctx.app.db, u.id).await?;
    Ok(Reply::Object(
        json!({ "apikey": apikey, "secretkey": secretkey }),
    ))
});

handler!(get_user_keys, |ctx, params| {
    let u = user_param(ctx, params).await?;
    Ok(Reply::Object(
        json!({ "apikey": u.api_key, "secretkey": u.secret_key }),
    ))
});
