"""A whole VPC, built and torn down with the real `cs` client library.

Usage: cs_vpc_scenario.py ENDPOINT KEY SECRET
Prints "cs vpc scenario passed" on success; any failed check raises.
Async commands are polled by cs itself (fetch_result=True) through
queryAsyncJobResult.
"""
import sys

from cs import CloudStack, CloudStackApiException

endpoint, key, secret = sys.argv[1:4]
api = CloudStack(endpoint=endpoint, key=key, secret=secret, method="post",
                 poll_interval=0.1, fetch_result=True)


def refused(code, fragment, command, **params):
    try:
        getattr(api, command)(**params)
    except CloudStackApiException as error:
        body = error.error
        assert body["errorcode"] == code, body
        assert fragment.lower() in body["errortext"].lower(), body
    else:
        raise AssertionError(f"{command} {params} was not refused")


# A zone with guest VLANs and a public range in a documentation prefix.
zone = api.createZone(name="cs-zone", networktype="Advanced", dns1="198.51.100.1",
                      internaldns1="198.51.100.2")["zone"]
physnet = api.createPhysicalNetwork(zoneid=zone["id"], name="cs-pn", vlan="200-209",
                                    isolationmethods="VLAN")["physicalnetwork"]
for traffic in ("Guest", "Public"):
    api.addTrafficType(physicalnetworkid=physnet["id"], traffictype=traffic)
api.createVlanIpRange(zoneid=zone["id"], gateway="203.0.113.1", netmask="255.255.255.0",
                      startip="203.0.113.100", endip="203.0.113.110", forvirtualnetwork=True)

# A VPC offering of our own, enabled.
offering = api.createVPCOffering(name="cs-offering", displaytext="cs offering",
                                 supportedservices="Dhcp,Dns,SourceNat,PortForwarding,Lb,Vpn,"
                                                   "StaticNat,NetworkACL,UserData,Vpn")["vpcoffering"]
assert offering["state"] == "Disabled", offering
refused(431, "Enabled", "createVPC", name="x", zoneid=zone["id"], vpcofferingid=offering["id"],
        cidr="10.50.0.0/16")
api.updateVPCOffering(id=offering["id"], state="Enabled")

# The VPC.
vpc = api.createVPC(name="cs-vpc", zoneid=zone["id"], vpcofferingid=offering["id"],
                    cidr="10.50.0.0/16")["vpc"]
assert vpc["state"] == "Enabled" and vpc["cidr"] == "10.50.0.0/16", vpc
vpcs = api.listVPCs(id=vpc["id"], fetch_list=True)
assert [v["id"] for v in vpcs] == [vpc["id"]], vpcs
routers = api.listRouters(vpcid=vpc["id"], fetch_list=True)
assert len(routers) == 1 and routers[0]["state"] == "Running", routers

# Two tiers.
tier_offerings = api.listNetworkOfferings(forvpc=True, fetch_list=True)
no_lb = [o for o in tier_offerings if not any(s["name"] == "Lb" for s in o["service"])]
tier_offering = (no_lb or tier_offerings)[0]
web = api.createNetwork(name="web", displaytext="web", zoneid=zone["id"], vpcid=vpc["id"],
                        networkofferingid=tier_offering["id"], gateway="10.50.1.1",
                        netmask="255.255.255.0")["network"]
db = api.createNetwork(name="db", displaytext="db", zoneid=zone["id"], vpcid=vpc["id"],
                       networkofferingid=tier_offering["id"], gateway="10.50.2.1",
                       netmask="255.255.255.0")["network"]
refused(431, "10.50.1.0/24", "createNetwork", name="clash", displaytext="clash",
        zoneid=zone["id"], vpcid=vpc["id"], networkofferingid=tier_offering["id"],
        gateway="10.50.1.129", netmask="255.255.255.128")
tiers = api.listNetworks(vpcid=vpc["id"], fetch_list=True)
assert sorted(t["name"] for t in tiers) == ["db", "web"], tiers

# A VM in the web tier, to forward to.
service_offering = api.listServiceOfferings(fetch_list=True)[0]
template = api.listTemplates(templatefilter="featured", fetch_list=True)[0]
vm = api.deployVirtualMachine(zoneid=zone["id"], serviceofferingid=service_offering["id"],
                              templateid=template["id"], networkids=web["id"],
                              name="web1")["virtualmachine"]
assert vm["state"] == "Running", vm
vm_ip = vm["nic"][0]["ipaddress"]
assert vm_ip.startswith("10.50.1."), vm

# A public address and a port forward to the VM.
ip = api.associateIpAddress(vpcid=vpc["id"])["ipaddress"]
assert ip["vpcid"] == vpc["id"] and not ip["issourcenat"], ip
refused(431, "openfirewall", "createPortForwardingRule", ipaddressid=ip["id"], privateport=80,
        publicport=8080, protocol="tcp", virtualmachineid=vm["id"], networkid=web["id"],
        openfirewall=True)
pf = api.createPortForwardingRule(ipaddressid=ip["id"], privateport=80, publicport=8080,
                                  protocol="tcp", virtualmachineid=vm["id"],
                                  networkid=web["id"], openfirewall=False)["portforwardingrule"]
assert pf["privateport"] == "80" and pf["publicport"] == "8080", pf
refused(537, "conflict", "createPortForwardingRule", ipaddressid=ip["id"], privateport=81,
        publicport=8080, protocol="tcp", virtualmachineid=vm["id"], networkid=web["id"],
        openfirewall=False)

# An ACL list with two items, put on the web tier.
acl = api.createNetworkACLList(name="web-acl", description="web", vpcid=vpc["id"])
acl = acl.get("networkacllist", acl)
item = api.createNetworkACL(aclid=acl["id"], protocol="tcp", startport=80, endport=80,
                            cidrlist="0.0.0.0/0", action="Allow", traffictype="Ingress",
                            number=10)["networkacl"]
api.createNetworkACL(aclid=acl["id"], protocol="icmp", icmptype=-1, icmpcode=-1,
                     cidrlist="10.50.0.0/16", action="Allow", traffictype="Ingress")
refused(431, "number", "createNetworkACL", aclid=acl["id"], protocol="tcp", startport=22,
        endport=22, cidrlist="0.0.0.0/0", action="Deny", traffictype="Ingress", number=10)
api.replaceNetworkACLList(aclid=acl["id"], networkid=web["id"])
items = api.listNetworkACLs(aclid=acl["id"], fetch_list=True)
assert sorted(int(i["number"]) for i in items) == [10, 11], items
assert api.listNetworks(id=web["id"], fetch_list=True)[0]["aclid"] == acl["id"]

# A private gateway and a static route through it.
gateway = api.createPrivateGateway(vpcid=vpc["id"], ipaddress="172.16.5.2", gateway="172.16.5.1",
                                   netmask="255.255.255.0", vlan="3005",
                                   physicalnetworkid=physnet["id"])["privategateway"]
assert gateway["state"] == "Ready", gateway
route = api.createStaticRoute(gatewayid=gateway["id"], cidr="192.168.77.0/24")["staticroute"]
assert route["state"] == "Active", route
refused(537, "conflicts", "createStaticRoute", gatewayid=gateway["id"], cidr="192.168.77.128/25")
refused(530, "static route", "deletePrivateGateway", id=gateway["id"])

# Teardown, in the order a client has to follow.
refused(431, "networks", "deleteVPC", id=vpc["id"])
api.deleteStaticRoute(id=route["id"])
api.deletePrivateGateway(id=gateway["id"])
api.deleteNetworkACL(id=item["id"])
api.deletePortForwardingRule(id=pf["id"])
api.disassociateIpAddress(id=ip["id"])
api.destroyVirtualMachine(id=vm["id"], expunge=True)
api.deleteNetwork(id=web["id"])
api.deleteNetwork(id=db["id"])
api.deleteNetworkACLList(id=acl["id"])
api.deleteVPC(id=vpc["id"])
assert api.listVPCs(id=vpc["id"], fetch_list=True) == []
assert api.listRouters(listall=True, fetch_list=True) == []
api.deleteVPCOffering(id=offering["id"])

print("cs vpc scenario passed")
