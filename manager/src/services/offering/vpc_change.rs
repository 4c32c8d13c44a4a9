//! createVPCOffering, updateVPCOffering and deleteVPCOffering (root admin):
//! the services and providers of a new offering, checked; the rows changed
//! by the jobs.

use serde_json::{Value, json};

use super::{state_param, vpc_offering_view};
use crate::api::Params;
use crate::error::Error;
use crate::server::jobs::JobBody;
use crate::server::registry::Handler;
use crate::server::{Ctx, Reply};
use crate::store::bootstrap::VPC_SERVICES;
use crate::store::{Db, Page, offering, vpc};
use crate::{handler, job_body, rules};

pub(super) const CREATE_VPC_OFFERING: Handler = create_vpc_offering;
pub(super) const CREATE_VPC_OFFERING_JOB: JobBody = create_vpc_offering_job;
pub(super) const UPDATE_VPC_OFFERING: Handler = update_vpc_offering;
pub(super) const UPDATE_VPC_OFFERING_JOB: JobBody = update_vpc_offering_job;
pub(super) const DELETE_VPC_OFFERING: Handler = delete_vpc_offering;
pub(super) const DELETE_VPC_OFFERING_JOB: JobBody = delete_vpc_offering_job;

/// Services every VPC offering gets, listed or not (§2.2: SourceNat unless
/// routed, NetworkACL always, Gateway with the SourceNat provider).
const ALWAYS_ADDED: &[&str] = &["SourceNat", "NetworkACL", "Gateway"];

/// The CloudStack spelling of a VPC service (case-insensitive), or 431.
fn vpc_service(name: &str) -> Result<&'static str, Error> {
    VPC_SERVICES
        .iter()
        .copied()
        .find(|s| s.eq_ignore_ascii_case(name.trim()))
        .ok_or_else(|| {
            Error::invalid(format!(
                "Service {name} is not supported by the VPC virtual router; use one of {}",
                VPC_SERVICES.join(", ")
            ))
        })
}

/// The (service, provider) pairs of a new offering: the listed services, each
/// with the provider the map names (VpcVirtualRouter by default), plus the
/// services every offering gets.
fn new_offering_services(
    listed: &[std::string::String],
    providers: &[std::collections::BTreeMap<std::string::String, std::string::String>],
) -> Result<Vec<offering::ServiceProvider>, Error> {
    let mut services: Vec<&'static str> = Vec::new();
    for name in listed {
        let service = vpc_service(name)?;
        if !services.contains(&service) {
            services.push(service);
        }
    }
    if services.is_empty() {
        return Err(Error::invalid(
            "supportedservices must name at least one service",
        ));
    }
    for entry in providers {
        let (Some(service), Some(provider)) = (entry.get("service"), entry.get("provider")) else {
            return Err(Error::invalid(
                "each serviceproviderlist entry needs a service and a provider",
            ));
        };
        let service = vpc_service(service)?;
        if !services.contains(&service) {
            return Err(Error::invalid(format!(
                "Service {service} is not in supportedservices, so it cannot have a provider"
            )));
        }
        if !provider.eq_ignore_ascii_case(offering::PROVIDER_VPC_VIRTUAL_ROUTER) {
            return Err(Error::invalid(format!(
                "Provider {provider} is not supported for service {service}; only {} is",
                offering::PROVIDER_VPC_VIRTUAL_ROUTER
            )));
        }
    }
    for service in ALWAYS_ADDED {
        if !services.contains(service) {
            services.push(service);
        }
    }
    Ok(services
        .into_iter()
        .map(|s| offering::ServiceProvider::new(s, offering::PROVIDER_VPC_VIRTUAL_ROUTER))
        .collect())
}

/// 431 when a live VPC offering other than `except` is named `name`.
async fn check_name_free(db: &Db, name: &str, except: Option<i64>) -> Result<(), Error> {
    let filter = offering::OfferingFilter {
        name: Some(name.to_string()),
        ..Default::default()
    };
    let taken = offering::list_vpc_offerings(db, &filter, Page::ALL)
        .await?
        .items
        .iter()
        .any(|o| Some(o.id) != except);
    if taken {
        return Err(Error::invalid(format!(
            "A VPC offering named {name} exists already"
        )));
    }
    Ok(())
}

/// The live VPC offering named by the `id` parameter, or 431.
async fn vpc_offering_param(ctx: &Ctx, params: &Params) -> Result<offering::VpcOffering, Error> {
    let id = params.required_uuid(ctx.command, "id")?.to_string();
    offering::vpc_offering_by_uuid(&ctx.app.db, &id)
        .await?
        .filter(|o| o.removed.is_none())
        .ok_or_else(|| Error::invalid_id("id", &id))
}

async fn vpc_offering_result(db: &Db, id: i64) -> Result<Value, Error> {
    let o = offering::vpc_offering_by_id(db, id)
        .await?
        .filter(|o| o.removed.is_none())
        .ok_or_else(|| Error::invalid("The VPC offering was deleted meanwhile"))?;
    let services = offering::vpc_offering_services(db, o.id).await?;
    Ok(json!({ "vpcoffering": vpc_offering_view(&o, &services) }))
}

handler!(create_vpc_offering, |ctx, params| {
    let db = &ctx.app.db;
    let name = params.required_string(ctx.command, "name")?;
    if name.trim().is_empty() {
        return Err(Error::missing_param(ctx.command, "name"));
    }
    let listed = params
        .list("supportedservices")?
        .ok_or_else(|| Error::missing_param(ctx.command, "supportedservices"))?;
    let services = new_offering_services(&listed, &params.map("serviceproviderlist")?)?;
    let display_text = params
        .string("displaytext")?
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| name.clone());
    let state = if params.boolean("enable")? == Some(true) {
        offering::STATE_ENABLED
    } else {
        offering::STATE_DISABLED
    };
    check_name_free(db, &name, None).await?;
    // Async-create: the row exists before the job, which only reports it.
    let created = offering::create_vpc_offering(
        db,
        offering::NewVpcOffering {
            name,
            unique_name: None,
            display_text,
            state: state.into(),
            is_default: false,
            distributed_router: false,
            redundant_router: false,
            network_mode: "NATTED".into(),
            internet_protocol: "ipv4".into(),
            services,
        },
    )
    .await?;
    let submitted = ctx
        .submit_job(
            json!({ "id": created.id }),
            Some(("VpcOffering", &created.uuid)),
            format!("vpcoffering:{}", created.id),
        )
        .await;
    // Async-create answers with the new id only when its job exists;
    // without one the row would stay half-created, so it goes again.
    let job_id = match submitted {
        Ok(job_id) => job_id,
        Err(e) => {
            if let Err(undo) = offering::remove_vpc_offering(&ctx.app.db, created.id).await {
                tracing::error!(error = %undo, "removing a row whose job could not be submitted");
            }
            return Err(e);
        }
    };
    Ok(Reply::Created {
        id: created.uuid,
        job_id,
    })
});

job_body!(create_vpc_offering_job, |job, info| {
    vpc_offering_result(&job.app.db, info["id"].as_i64().unwrap_or_default()).await
});

handler!(update_vpc_offering, |ctx, params| {
    let o = vpc_offering_param(ctx, params).await?;
    let name = params.string("name")?.filter(|n| !n.trim().is_empty());
    if let Some(name) = &name {
        check_name_free(&ctx.app.db, name, Some(o.id)).await?;
    }
    let display_text = params.string("displaytext")?.filter(|t| !t.is_empty());
    let state = state_param(params)?;
    if o.is_default && state.as_deref() == Some(offering::STATE_DISABLED) {
        return Err(Error::invalid(format!(
            "The default VPC offering {} cannot be disabled",
            o.uuid
        )));
    }
    let job_id = ctx
        .submit_job(
            json!({
                "id": o.id,
                "name": name,
                "displaytext": display_text,
                "state": state,
                "sortkey": params.long("sortkey")?,
            }),
            Some(("VpcOffering", &o.uuid)),
            format!("vpcoffering:{}", o.id),
        )
        .await?;
    Ok(Reply::Job { job_id })
});

job_body!(update_vpc_offering_job, |job, info| {
    let db = &job.app.db;
    let id = info["id"].as_i64().unwrap_or_default();
    let updated = offering::update_vpc_offering(
        db,
        id,
        info["name"].as_str(),
        info["displaytext"].as_str(),
        info["state"].as_str(),
        info["sortkey"].as_i64(),
    )
    .await?;
    if !updated {
        return Err(Error::invalid("The VPC offering was deleted meanwhile"));
    }
    vpc_offering_result(db, id).await
});

handler!(delete_vpc_offering, |ctx, params| {
    let o = vpc_offering_param(ctx, params).await?;
    rules::vpc::check_offering_deletable(&o.uuid, o.is_default, 0)?;
    let job_id = ctx
        .submit_job(
            json!({ "id": o.id }),
            Some(("VpcOffering", &o.uuid)),
            format!("vpcoffering:{}", o.id),
        )
        .await?;
    Ok(Reply::Job { job_id })
});

job_body!(delete_vpc_offering_job, |job, info| {
    let db = &job.app.db;
    let id = info["id"].as_i64().unwrap_or_default();
    let o = offering::vpc_offering_by_id(db, id)
        .await?
        .filter(|o| o.removed.is_none())
        .ok_or_else(|| Error::invalid("The VPC offering was deleted meanwhile"))?;
    // Counted in the job, so VPCs created while it waited are seen.
    let users = vpc::list(
        db,
        &vpc::VpcFilter {
            vpc_offering_id: Some(o.id),
            ..Default::default()
        },
        Page::first(1),
    )
    .await?
    .total;
    rules::vpc::check_offering_deletable(
        &o.uuid,
        o.is_default,
        usize::try_from(users).unwrap_or(usize::MAX),
    )?;
    offering::remove_vpc_offering(db, o.id).await?;
    Ok(json!({ "success": true }))
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_offerings_get_the_always_added_services() {
        let listed = ["dhcp".to_string(), "Lb".to_string()];
        let services = new_offering_services(&listed, &[]).unwrap();
        let names: Vec<&str> = services.iter().map(|s| s.service.as_str()).collect();
        assert_eq!(names, ["Dhcp", "Lb", "SourceNat", "NetworkACL", "Gateway"]);
        assert!(
            services
                .iter()
                .all(|s| s.provider == offering::PROVIDER_VPC_VIRTUAL_ROUTER)
        );
    }

    #[test]
    fn unknown_services_and_providers_are_refused() {
        let code = |r: Result<Vec<offering::ServiceProvider>, Error>| {
            r.map_err(crate::api::ApiError::from).unwrap_err().code
        };
        assert_eq!(code(new_offering_services(&["Firewall".into()], &[])), 431);
        let entry = |service: &str, provider: &str| {
            std::collections::BTreeMap::from([
                ("service".to_string(), service.to_string()),
                ("provider".to_string(), provider.to_string()),
            ])
        };
        let listed = ["Dhcp".to_string()];
        assert_eq!(
            code(new_offering_services(
                &listed,
                &[entry("Dns", "VpcVirtualRouter")]
            )),
            431
        );
        assert_eq!(
            code(new_offering_services(
                &listed,
                &[entry("Dhcp", "VirtualRouter")]
            )),
            431
        );
        assert!(new_offering_services(&listed, &[entry("dhcp", "vpcvirtualrouter")]).is_ok());
    }
}
