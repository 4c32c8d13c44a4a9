//! `listLoadBalancerRuleInstances`: the VMs of a rule (or, `applied=false`,
//! those of its tier that could join it); with `lbvmips` each VM with its
//! addresses in the rule (CloudStack's LoadBalancerRuleVmMapResponse).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use uuid::Uuid;

use super::super::lb_by_uuid;
use crate::error::Error;
use crate::server::command::{Arg, Args, Command, Flag, Id, Int, Spec, SyncCommand, Text};
use crate::server::list_paging::Paging;
use crate::server::registry::ALL;
use crate::server::{Ctx, Reply, date, page_of};
use crate::services::ip::common::{self, Names, merge};
use crate::services::vm::nic_fields;
use crate::store::{Db, Page, Scope, rule, vm};

const ID: Arg<Id> = Arg::req("id", "the ID of the load balancer rule");
const APPLIED: Arg<Flag> = Arg::opt(
    "applied",
    "true (default): the rule's VMs; false: the other VMs of its tier",
);
const LB_VM_IPS: Arg<Flag> = Arg::opt(
    "lbvmips",
    "true: each VM with its addresses in the rule (lbrulevmidip)",
);
const KEYWORD: Arg<Text> = Arg::opt("keyword", "a substring of the VM name");
const PAGE_SIZE: Arg<Int> = Arg::opt("pagesize", "the number of VMs per page");

/// `listLoadBalancerRuleInstances`.
pub struct ListLoadBalancerRuleInstances {
    id: Uuid,
    applied: bool,
    lb_vm_ips: bool,
    paging: Paging,
}

impl Command for ListLoadBalancerRuleInstances {
    const NAME: &'static str = "listLoadBalancerRuleInstances";

    fn spec() -> Spec {
        Spec::new(
            "Lists the VMs of a load balancer rule (applied=false: the VMs that \
                          could join it)",
        )
        .roles(ALL)
        .param(ID)
        .param(APPLIED)
        .param(LB_VM_IPS)
        .params(Paging::specs_described(KEYWORD, PAGE_SIZE))
        .returns("loadbalancerruleinstance", vec![])
    }

    fn parse(args: &Args<'_>) -> Result<Self, Error> {
        Ok(ListLoadBalancerRuleInstances {
            id: args.need(&ID)?,
            applied: args.get(&APPLIED)? != Some(false),
            lb_vm_ips: args.get(&LB_VM_IPS)? == Some(true),
            paging: Paging::parse(args)?,
        })
    }
}

impl SyncCommand for ListLoadBalancerRuleInstances {
    async fn handle(self, ctx: &Ctx) -> Result<Reply, Error> {
        let db = &ctx.app.db;
        let r = lb_by_uuid(ctx, ID.name(), self.id).await?;
        let page = self.paging.page(ctx).await?;
        let members = rule::members_with_vms(db, r.id).await?;
        // The member VMs in the order they joined, with their addresses.
        let mut assigned: BTreeMap<i64, Vec<String>> = BTreeMap::new();
        let mut order = Vec::new();
        for m in &members {
            if let Some(vm_id) = m.vm_id {
                if !assigned.contains_key(&vm_id) {
                    order.push(vm_id);
                }
                assigned
                    .entry(vm_id)
                    .or_default()
                    .push(m.instance_ip.to_string());
            }
        }
        let vms: Vec<vm::Vm> = if self.applied {
            let mut out = Vec::new();
            for vm_id in order {
                if let Some(v) = vm::get_by_id(db, vm_id).await? {
                    out.push(v);
                }
            }
            out
        } else {
            // The VMs that could join: the rule owner's VMs in the rule's tier.
            vm::list(
                db,
                &vm::VmFilter {
                    network_id: Some(r.network_id),
                    scope: Scope::account(r.account_id),
                    ..Default::default()
                },
                Page::ALL,
            )
            .await?
            .items
            .into_iter()
            .filter(|v| {
                !assigned.contains_key(&v.id)
                    && ![vm::STATE_DESTROYED, vm::STATE_EXPUNGING, vm::STATE_ERROR]
                        .contains(&v.state)
            })
            .collect()
        };
        let vms: Vec<vm::Vm> = vms
            .into_iter()
            .filter(|v| {
                // An empty keyword matches every name.
                self.paging
                    .keyword
                    .as_ref()
                    .is_none_or(|k| v.name.to_lowercase().contains(&k.to_lowercase()))
            })
            .collect();
        let count = vms.len() as u64;
        let mut names = Names::default();
        let mut items = Vec::new();
        for v in page_of(vms, page) {
            let view = vm_view(db, &mut names, &v).await?;
            items.push(if self.lb_vm_ips {
                json!({
                    "loadbalancerruleinstance": view,
                    "lbvmipaddresses": assigned.get(&v.id).cloned().unwrap_or_default(),
                })
            } else {
                view
            });
        }
        if !self.lb_vm_ips {
            return Ok(Reply::List { count, items });
        }
        // With lbvmips the items are CloudStack's LoadBalancerRuleVmMapResponse.
        if count == 0 {
            return Ok(Reply::Raw(json!({})));
        }
        Ok(Reply::Raw(json!({ "count": count, "lbrulevmidip": items })))
    }
}

/// A VM as listLoadBalancerRuleInstances shows it (the main fields of
/// CloudStack's UserVmResponse, with its NICs).
async fn vm_view(db: &Db, names: &mut Names, v: &vm::Vm) -> Result<Value, Error> {
    let zone = names
        .zone(db, v.zone_id)
        .await?
        .map(|z| (z.uuid, z.name.clone()));
    let mut nics = Vec::new();
    for n in common::vm_nics(db, v.id).await? {
        let network = names.network(db, n.network_id).await?.map(|t| t.uuid);
        nics.push(nic_fields(&n, network.as_ref()));
    }
    let view = json!({
        "id": v.uuid,
        "name": v.name,
        "displayname": v.display_name,
        "state": v.state,
        "zoneid": zone.as_ref().map(|z| z.0),
        "zonename": zone.as_ref().map(|z| z.1.clone()),
        "created": date(v.created),
        "nic": nics,
    });
    let owner = names
        .owner(db, Some(v.account_id), Some(v.domain_id))
        .await?;
    Ok(merge(view, owner))
}
