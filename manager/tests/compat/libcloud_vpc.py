"""A whole VPC, built and torn down with Apache Libcloud's CloudStack drivers.

Usage: libcloud_vpc.py ENDPOINT KEY SECRET
Prints "libcloud vpc scenario passed" on success; any failed check raises.

Everything goes through libcloud's compute and load balancer drivers as a
user of them would call them. Libcloud has no method for enableStaticNat,
so that one call goes through the driver's own request helper, as its
documentation suggests for commands without a wrapper.
"""
import sys
import time
from urllib.parse import urlsplit

from libcloud.compute.providers import get_driver
from libcloud.compute.types import Provider
from libcloud.loadbalancer.base import Algorithm, Member
from libcloud.loadbalancer.providers import get_driver as get_lb_driver
from libcloud.loadbalancer.types import Provider as LbProvider

endpoint, key, secret = sys.argv[1:4]
parts = urlsplit(endpoint)
# Libcloud takes `secure` on its own (True by default), whatever the URL says.
compute = get_driver(Provider.CLOUDSTACK)(key=key, secret=secret, url=endpoint,
                                          secure=parts.scheme == "https")
balancers = get_lb_driver(LbProvider.CLOUDSTACK)(key=key, secret=secret,
                                                 secure=parts.scheme == "https",
                                                 host=parts.hostname, port=parts.port,
                                                 path=parts.path)


def wait_for(what, check, seconds=60):
    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


zone = compute.list_locations()[0]
offering = [o for o in compute.ex_list_vpc_offerings() if o.name == "Default VPC offering"][0]

# The VPC (libcloud sends createVPC and does not wait for its job).
vpc = compute.ex_create_vpc(cidr="10.60.0.0/16", display_text="libcloud vpc",
                            name="lc-vpc", vpc_offering=offering, zone_id=zone.id)
wait_for("the VPC", lambda: [v for v in compute.ex_list_vpcs() if v.id == vpc.id])
routers = wait_for("its router", lambda: [r for r in compute.ex_list_routers(vpc_id=vpc.id)
                                          if r.state == "Running"])
assert len(routers) == 1, routers

# Two tiers from the default tier offering (it has Lb).
tier_offering = [o for o in compute.ex_list_network_offerings()
                 if o.name == "DefaultIsolatedNetworkOfferingForVpcNetworks"][0]
web = compute.ex_create_network(display_text="web", name="web", network_offering=tier_offering,
                                location=zone, gateway="10.60.1.1", netmask="255.255.255.0",
                                vpc_id=vpc.id)
db = compute.ex_create_network(display_text="db", name="db", network_offering=tier_offering,
                               location=zone, gateway="10.60.2.1", netmask="255.255.255.0",
                               vpc_id=vpc.id)
assert {n.id for n in compute.ex_list_networks()} >= {web.id, db.id}

# An ACL list with two items, on the web tier.
acl = compute.ex_create_network_acllist(name="web-acl", vpc_id=vpc.id, description="web")
compute.ex_create_network_acl(protocol="TCP", acl_id=acl.id, cidr_list="0.0.0.0/0",
                              start_port="80", end_port="80", action="Allow",
                              traffic_type="Ingress")
compute.ex_create_network_acl(protocol="TCP", acl_id=acl.id, cidr_list="0.0.0.0/0",
                              start_port="22", end_port="22", action="Allow",
                              traffic_type="Ingress")
assert acl.id in [a.id for a in compute.ex_list_network_acllists()]
assert len(compute.ex_list_network_acl()) >= 2
compute.ex_replace_network_acllist(acl_id=acl.id, network_id=web.id)

# Two VMs.
size = compute.list_sizes()[0]
image = compute.list_images()[0]
vm1 = compute.create_node(name="lc-web1", size=size, image=image, location=zone,
                          networks=[web], ex_start_vm=True)
vm2 = compute.create_node(name="lc-db1", size=size, image=image, location=zone,
                          networks=[db], ex_start_vm=True)


def both_running():
    running = [n for n in compute.list_nodes()
               if n.id in (vm1.id, vm2.id) and n.state == "running"]
    return running if len(running) == 2 else None


wait_for("two running nodes", both_running)

# Tags.
compute.ex_create_tags([vm1.id], "UserVm", {"role": "web"})
compute.ex_create_tags([vpc.id], "Vpc", {"env": "libcloud"})
tagged = [n for n in compute.list_nodes() if n.id == vm1.id][0]
assert tagged.extra["tags"] == {"role": "web"}, tagged.extra
assert [v for v in compute.ex_list_vpcs() if v.id == vpc.id]

# A port forward to vm1 (from a VPC address). Libcloud asks for
# openfirewall=true by default, which CloudStack refuses for a VPC's address
# ("Can't have openFirewall=true when IP address belongs to VPC").
pf_ip = compute.ex_allocate_public_ip(vpc_id=vpc.id, location=zone)
rule = compute.ex_create_port_forwarding_rule(node=vm1, address=pf_ip, private_port=22,
                                              public_port=2222, protocol="TCP",
                                              openfirewall=False, network_id=web.id)
assert rule.id in [r.id for r in compute.ex_list_port_forwarding_rules()]

# Static NAT to vm2; list_nodes shows the address on the node.
nat_ip = compute.ex_allocate_public_ip(vpc_id=vpc.id, location=zone)
compute._sync_request("enableStaticNat", params={"ipaddressid": nat_ip.id,
                                                  "virtualmachineid": vm2.id,
                                                  "networkid": db.id})
db1 = [n for n in compute.list_nodes() if n.id == vm2.id][0]
assert nat_ip.address in db1.public_ips, db1.public_ips
# enableStaticNat makes no IP forwarding *rule* (only createIpForwardingRule
# does, in CloudStack as here): list_nodes reads an empty list.
assert db1.extra["ip_forwarding_rules"] == [], db1.extra

# A load balancer with a member, through libcloud's load balancer driver.
member = Member(id=vm1.id, ip=vm1.private_ips[0] if vm1.private_ips else None, port=80)
balancer = balancers.create_balancer(name="lc-lb", members=[member], protocol="tcp", port=80,
                                     algorithm=Algorithm.ROUND_ROBIN, location=zone,
                                     private_port=8080, network_id=web.id, vpc_id=vpc.id)
assert balancer is not None
assert [m.id for m in balancers.balancer_list_members(balancer)] == [vm1.id]
assert balancer.id in [b.id for b in balancers.list_balancers()]

# Teardown, in the order a user would.
balancers.destroy_balancer(balancer)
compute.ex_delete_port_forwarding_rule(node=vm1, rule=rule)
compute.ex_release_public_ip(pf_ip)
compute.ex_release_public_ip(nat_ip)
compute.ex_delete_tags([vm1.id], "UserVm", ["role"])
for node in (vm1, vm2):
    compute.destroy_node(node, ex_expunge=True)
wait_for("no nodes", lambda: not [n for n in compute.list_nodes() if n.id in (vm1.id, vm2.id)])
compute.ex_delete_network(web)
compute.ex_delete_network(db)
compute.ex_delete_vpc(vpc)
wait_for("no VPC", lambda: not [v for v in compute.ex_list_vpcs() if v.id == vpc.id])
print("libcloud vpc scenario passed")
