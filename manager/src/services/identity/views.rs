//! The response objects of domains, accounts and users, and their
//! documented fields.

use serde_json::{Value, json};

use crate::error::Error;
use crate::server::registry::{FieldSpec, field};
use crate::server::{Ctx, Role, date};
use crate::store::{self, account, domain, user};

pub(super) fn role_name(account_type: i64) -> &'static str {
    match Role::of_account_type(account_type) {
        Role::Admin => "Admin",
        Role::DomainAdmin => "DomainAdmin",
        Role::User => "User",
    }
}

pub(super) async fn domain_view(ctx: &Ctx, d: &domain::Domain) -> Result<Value, Error> {
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
        "parentdomainid": parent.as_ref().map(|p| p.uuid),
        "parentdomainname": parent.as_ref().map(|p| p.name.clone()),
        "haschild": children.total > 0,
        "path": d.display_path(),
        "networkdomain": d.network_domain,
        "state": "Active",
        "created": date(d.created),
    }))
}

pub(super) fn user_view(u: &user::User, a: &account::Account, d: &domain::Domain) -> Value {
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

pub(super) async fn account_view(ctx: &Ctx, a: &account::Account) -> Result<Value, Error> {
    let db = &ctx.app.db;
    let d = domain::get_by_id(db, a.domain_id)
        .await?
        .ok_or_else(|| Error::internal("account without domain"))?;
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

pub(super) const DOMAIN_FIELDS: &[FieldSpec] = &[
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
];

pub(super) const ACCOUNT_FIELDS: &[FieldSpec] = &[
    field("id", "string", "the ID of the account"),
    field("name", "string", "the name of the account"),
    field(
        "accounttype",
        "integer",
        "0 user, 1 root admin, 2 domain admin",
    ),
    field("roletype", "string", "the role of the account"),
    field("domainid", "string", "the ID of the account's domain"),
    field("state", "string", "enabled, disabled or locked"),
    field("user", "list", "the users of the account"),
];

pub(super) const USER_FIELDS: &[FieldSpec] = &[
    field("id", "string", "the ID of the user"),
    field("username", "string", "the user name"),
    field("accountid", "string", "the ID of the user's account"),
    field("domainid", "string", "the ID of the user's domain"),
    field("state", "string", "enabled, disabled or locked"),
    field("apikey", "string", "the user's API key"),
];
