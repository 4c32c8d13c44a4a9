//! Accounts: `createAccount`, `listAccounts`, `updateAccount`,
//! `disableAccount`, `enableAccount`, `deleteAccount`.

use serde_json::json;

use super::views::{account_fields, account_view};
use super::{
    Target, denied, domain_param, managed_account_param, may_manage_account, paging, spec,
    user_params,
};
use crate::error::Error;
use crate::server::jobs::JobBody;
use crate::server::registry::{ADMINS, ALL, CommandSpec, Kind, ParamType::*, opt, req};
use crate::server::{Ctx, Reply, Role, page};
use crate::store::{self, account, user};
use crate::{handler, job_body};

/// The account commands.
pub(super) fn commands() -> Vec<CommandSpec> {
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
    vec![
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
    ]
}

/// The job bodies of the account commands.
pub(super) fn job_bodies() -> Vec<(&'static str, JobBody)> {
    vec![
        ("disableAccount", disable_account_job),
        ("deleteAccount", delete_account_job),
    ]
}

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
        return Err(Error::invalid(
            "accounttype must be 0 (user), 1 (root admin) or 2 (domain admin)",
        ));
    }
    if account_type == account::TYPE_ADMIN && !ctx.caller.is_root_admin() {
        return Err(denied(ctx, "root admin accounts"));
    }
    let d = domain_param(ctx, params, "domainid").await?;
    // CloudStack: root admin accounts live in ROOT only.
    if account_type == account::TYPE_ADMIN && d.parent_id.is_some() {
        return Err(Error::invalid(format!(
            "Invalid account type {account_type} given for an account in domain {}; unable to \
             create user of admin role type in non-ROOT domain.",
            d.uuid
        )));
    }
    // The new account's first user would otherwise hold the caller's own
    // rights (or more) under another name.
    let target = Target {
        account_id: 0,
        account_type,
        domain_path: &d.path,
    };
    if !may_manage_account(&ctx.caller, target) {
        return Err(denied(ctx, "accounts of this role in this domain"));
    }
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
            return Err(Error::invalid(format!(
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
            return Err(Error::invalid(format!(
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
    let a = managed_account_param(ctx, params, "id").await?;
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
        .ok_or_else(|| Error::internal("account vanished"))?;
    Ok(Reply::Object(account_view(ctx, &updated).await?))
});

/// Refuses changes to the caller's own account and to root admin accounts
/// for non-root callers.
fn check_state_change(ctx: &Ctx, a: &account::Account) -> Result<(), Error> {
    if a.id == ctx.caller.account_id {
        return Err(Error::invalid("An account cannot disable or delete itself"));
    }
    if a.account_type == account::TYPE_ADMIN && !ctx.caller.is_root_admin() {
        return Err(denied(ctx, &format!("account {}", a.uuid)));
    }
    Ok(())
}

handler!(disable_account, |ctx, params| {
    let a = managed_account_param(ctx, params, "id").await?;
    check_state_change(ctx, &a)?;
    if params.boolean("lock")? != Some(true) {
        return Err(Error::invalid(
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
        .ok_or_else(|| Error::invalid("the account is gone"))?;
    Ok(json!({ "account": { "id": a.uuid, "name": a.account_name, "state": a.state } }))
});

handler!(enable_account, |ctx, params| {
    let a = managed_account_param(ctx, params, "id").await?;
    account::set_state(&ctx.app.db, a.id, account::STATE_ENABLED).await?;
    let updated = account::get_by_id(&ctx.app.db, a.id)
        .await?
        .ok_or_else(|| Error::internal("account vanished"))?;
    Ok(Reply::Object(account_view(ctx, &updated).await?))
});

handler!(delete_account, |ctx, params| {
    let a = managed_account_param(ctx, params, "id").await?;
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
    let id = info["id"].as_i64().unwrap_or_default();
    // Its VMs and VPCs go with it, everything in them included.
    crate::provision::vpc::purge_account(&job.app.db, &job.app.network, id).await?;
    account::remove(&job.app.db, id).await?;
    Ok(json!({ "success": true }))
});
