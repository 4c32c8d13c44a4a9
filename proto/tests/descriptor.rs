//! The compiled contract names every RPC the manager and the agent rely on.

use prost::Message;
use prost_types::FileDescriptorSet;

const RPCS: [&str; 17] = [
    "PlugNic",
    "UnplugNic",
    "SetupGuestNetwork",
    "DestroyGuestNetwork",
    "IpAssoc",
    "SetSourceNat",
    "SetStaticRoutes",
    "SetNetworkAcl",
    "EditNetworkAcl",
    "SetPortForwardingRules",
    "SetStaticNatRules",
    "SetLoadBalancerRules",
    "SetDhcpEntries",
    "ApplyConfig",
    "SetVmData",
    "SetVpn",
    "GetState",
];

fn service(set: &FileDescriptorSet) -> &prost_types::ServiceDescriptorProto {
    let file = set
        .file
        .iter()
        .find(|f| f.package() == "vpc.agent.v1")
        .expect("package vpc.agent.v1 in the descriptor set");
    file.service
        .iter()
        .find(|s| s.name() == "VirtualRouter")
        .expect("service VirtualRouter")
}

fn rpc_names(set: &FileDescriptorSet) -> Vec<String> {
    service(set)
        .method
        .iter()
        .map(|m| m.name().to_string())
        .collect()
}

#[test]
fn embedded_descriptor_set_names_every_rpc() {
    let set = FileDescriptorSet::decode(vpc_proto::FILE_DESCRIPTOR_SET).expect("decodes");
    assert_eq!(rpc_names(&set), RPCS);
}

#[test]
fn proto_file_compiles_from_source_with_every_rpc() {
    let root = concat!(env!("CARGO_MANIFEST_DIR"));
    let set = protox::compile(["vpc/agent/v1/agent.proto"], [root]).expect("compiles");
    assert_eq!(rpc_names(&set), RPCS);
}

#[test]
fn every_mutating_request_carries_a_generation() {
    let set = FileDescriptorSet::decode(vpc_proto::FILE_DESCRIPTOR_SET).expect("decodes");
    let file = &set.file[0];
    for method in &service(&set).method {
        if method.name() == "GetState" {
            continue;
        }
        let input = method.input_type().trim_start_matches(".vpc.agent.v1.");
        let message = file
            .message_type
            .iter()
            .find(|m| m.name() == input)
            .unwrap_or_else(|| panic!("message {input}"));
        let generation = message
            .field
            .iter()
            .find(|f| f.name() == "generation")
            .unwrap_or_else(|| panic!("{input} has no generation field"));
        assert_eq!(
            generation.r#type(),
            prost_types::field_descriptor_proto::Type::Uint64,
            "{input}.generation is uint64"
        );
    }
}

#[test]
fn enums_cover_the_router_vocabulary() {
    let set = FileDescriptorSet::decode(vpc_proto::FILE_DESCRIPTOR_SET).expect("decodes");
    let file = &set.file[0];
    let values = |name: &str| -> Vec<String> {
        file.enum_type
            .iter()
            .find(|e| e.name() == name)
            .unwrap_or_else(|| panic!("enum {name}"))
            .value
            .iter()
            .map(|v| v.name().to_string())
            .collect()
    };
    for (name, wanted) in [
        (
            "Protocol",
            &[
                "PROTOCOL_ALL",
                "PROTOCOL_TCP",
                "PROTOCOL_UDP",
                "PROTOCOL_ICMP",
                "PROTOCOL_NUMBER",
            ][..],
        ),
        ("AclAction", &["ACL_ACTION_ALLOW", "ACL_ACTION_DENY"][..]),
        (
            "TrafficType",
            &["TRAFFIC_TYPE_INGRESS", "TRAFFIC_TYPE_EGRESS"][..],
        ),
        (
            "NicRole",
            &[
                "NIC_ROLE_GUEST",
                "NIC_ROLE_PUBLIC",
                "NIC_ROLE_PRIVATE",
                "NIC_ROLE_CONTROL",
            ][..],
        ),
        (
            "LbAlgorithm",
            &[
                "LB_ALGORITHM_ROUND_ROBIN",
                "LB_ALGORITHM_SOURCE",
                "LB_ALGORITHM_LEAST_CONN",
            ][..],
        ),
    ] {
        let have = values(name);
        for w in wanted {
            assert!(have.iter().any(|h| h == w), "{name} lacks {w}: {have:?}");
        }
    }
}

#[test]
fn generated_messages_round_trip() {
    use vpc_proto::v1::{
        AclAction, AclItem, NetworkAcl, Protocol, SetNetworkAclRequest, TrafficType,
    };
    let request = SetNetworkAclRequest {
        generation: 7,
        acl: Some(NetworkAcl {
            device_index: 2,
            mac_address: "02:00:00:00:00:02".into(),
            items: vec![AclItem {
                number: 10,
                action: AclAction::Allow as i32,
                traffic_type: TrafficType::Ingress as i32,
                protocol: Protocol::Tcp as i32,
                cidrs: vec!["10.0.0.0/8".into()],
                start_port: Some(22),
                end_port: Some(22),
                icmp_type: None,
                ..Default::default()
            }],
            ..Default::default()
        }),
    };
    let bytes = request.encode_to_vec();
    let back = SetNetworkAclRequest::decode(bytes.as_slice()).expect("decodes");
    assert_eq!(back, request);
    assert_eq!(
        back.acl.unwrap().items[0].icmp_type,
        None,
        "absent ICMP type stays absent"
    );
}
