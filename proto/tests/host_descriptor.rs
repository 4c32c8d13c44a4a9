//! The compiled host agent contract names every RPC the manager relies on,
//! and the agent's descriptor set stays the agent's alone.

use prost::Message;
use prost_types::FileDescriptorSet;

const RPCS: [&str; 14] = [
    "StartRouter",
    "ActivateRouter",
    "StopRouter",
    "DestroyRouter",
    "PlugNic",
    "UnplugNic",
    "StartVm",
    "StopVm",
    "DestroyVm",
    "Inventory",
    "Describe",
    "SetFloodList",
    "RelayRouterAgent",
    "CheckNeighbour",
];

fn rpc_names(set: &FileDescriptorSet) -> Vec<String> {
    let file = set
        .file
        .iter()
        .find(|f| f.package() == "vpc.host.v1")
        .expect("package vpc.host.v1 in the descriptor set");
    let service = file
        .service
        .iter()
        .find(|s| s.name() == "HostAgent")
        .expect("service HostAgent");
    service
        .method
        .iter()
        .map(|m| m.name().to_string())
        .collect()
}

#[test]
fn embedded_host_descriptor_set_names_every_rpc() {
    let set = FileDescriptorSet::decode(vpc_proto::HOST_FILE_DESCRIPTOR_SET).expect("decodes");
    assert_eq!(rpc_names(&set), RPCS);
    assert_eq!(
        vpc_proto::HOST_AGENT_SERVICE,
        "vpc.host.v1.HostAgent",
        "the name reflection lists"
    );
}

#[test]
fn the_agent_descriptor_set_holds_only_the_agent_protocol() {
    let set = FileDescriptorSet::decode(vpc_proto::FILE_DESCRIPTOR_SET).expect("decodes");
    let packages: Vec<&str> = set.file.iter().map(|f| f.package()).collect();
    assert_eq!(packages, ["vpc.agent.v1"]);
}

#[test]
fn host_messages_round_trip_with_an_absent_broadcast_uri() {
    use vpc_proto::host::v1::{NicRole, Router, RouterNic, StartRouterRequest};
    let request = StartRouterRequest {
        router: Some(Router {
            id: "6f1c2a34-0000-4000-8000-000000000001".into(),
            name: "r-1-VM".into(),
            zone_id: "6f1c2a34-0000-4000-8000-000000000002".into(),
            generation: 3,
            nics: vec![RouterNic {
                device_index: 0,
                mac_address: "0e:00:a9:fe:00:01".into(),
                role: NicRole::Control as i32,
                broadcast_uri: None,
                ..Default::default()
            }],
        }),
        standby: false,
        tls: None,
    };
    let back = StartRouterRequest::decode(request.encode_to_vec().as_slice()).expect("decodes");
    assert_eq!(back, request);
    assert_eq!(back.router.unwrap().nics[0].broadcast_uri, None);
}
