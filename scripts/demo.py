"""The demo: a whole VPC built through the API with the `cs` client, then a
connectivity matrix measured with real packets in the namespaces of the
netns driver, checked against what the ACLs say.

Run it through scripts/demo.sh (which picks the virtualenv); --help lists
the options. Exit status: 0 when every probe agrees with the ACLs and the
teardown left nothing, 1 otherwise, 2 on a usage or API error.
"""

import argparse
import ipaddress
import os
import subprocess
import sys
import time

from cs import CloudStack, CloudStackApiException, read_config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# A TCP server for the namespaces: listens on every port given and answers
# each connection with the address it sees the peer as.
SERVER = r"""
import socket, sys, threading
def serve(s):
    while True:
        c, peer = s.accept()
        try:
            c.sendall((peer[0] + "\n").encode())
        except OSError:
            pass
        c.close()
socks = []
for p in sys.argv[1:]:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("0.0.0.0", int(p)))
    s.listen(16)
    socks.append(s)
for s in socks:
    threading.Thread(target=serve, args=(s,), daemon=True).start()
print("ready", flush=True)
threading.Event().wait()
"""

# A TCP client: connects (from a source address if given), prints what the
# server saw; exits 1 when the connection fails.
CLIENT = r"""
import socket, sys
host, port, timeout = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
src = (sys.argv[4], 0) if len(sys.argv) > 4 else None
try:
    s = socket.create_connection((host, port), timeout=timeout, source_address=src)
    s.settimeout(timeout)
    print(s.recv(100).decode().strip())
except OSError as e:
    print(e, file=sys.stderr)
    sys.exit(1)
"""

TCP_TIMEOUT = 3.0


def say(text=""):
    print(text, flush=True)


def parse_args():
    p = argparse.ArgumentParser(
        prog="scripts/demo.sh",
        description="Build a VPC with two tiers, a VM in each, ACLs, a port forward and a "
        "private gateway with a static route to an on-premises network, and a second VPC "
        "(branch) joined by a site-to-site VPN; measure who reaches whom with real "
        "packets; tear it all down.",
    )
    p.add_argument("--keep", action="store_true", help="leave everything in place")
    p.add_argument("--prefix", default=os.environ.get("VPC_NETNS_PREFIX", "vpc-"),
                   help="the manager's --netns-prefix (default vpc-)")
    p.add_argument("--config",
                   default=os.environ.get("CLOUDSTACK_CONFIG",
                                          "/var/lib/vpc-manager/cloudstack.ini"),
                   help="cloudstack.ini of an admin (default: the manager's, "
                        "/var/lib/vpc-manager/cloudstack.ini)")
    p.add_argument("--zone", help="zone name or id (default: the first zone)")
    p.add_argument("--cidr", default="10.60.0.0/16", help="the VPC's CIDR (a /16)")
    p.add_argument("--vlan", default="3100", help="the private gateway's VLAN")
    p.add_argument("--branch-cidr", default="10.61.0.0/16",
                   help="the CIDR of the branch VPC joined by site-to-site VPN (a /16)")
    p.add_argument("--manager-bin", default=os.environ.get("VPC_MANAGER_BIN"),
                   help="the vpc-manager binary, for the on-premises namespace "
                        "(default: target/release, else target/debug)")
    p.add_argument("--teardown", metavar="VPCID",
                   help="only tear down a VPC an earlier --keep run left")
    args = p.parse_args()
    if not args.manager_bin:
        for profile in ("release", "debug"):
            candidate = os.path.join(ROOT, "target", profile, "vpc-manager")
            if os.access(candidate, os.X_OK):
                args.manager_bin = candidate
                break
        else:
            p.error("no vpc-manager binary: build it or give --manager-bin")
    return args


def connect(config):
    if not os.path.exists(config):
        sys.exit(f"demo: {config} not found: start the manager (scripts/run.sh) or give --config")
    os.environ["CLOUDSTACK_CONFIG"] = config
    conf = read_config()
    conf.update(method="post", fetch_result=True, poll_interval=0.1, timeout=120)
    return CloudStack(**conf)


def netns_exec(ns, *argv, **kwargs):
    return subprocess.run(["ip", "netns", "exec", ns, *argv], capture_output=True, text=True,
                          **kwargs)


def manager_cli(args, *argv):
    out = subprocess.run([args.manager_bin, "netns", *argv, "--prefix", args.prefix],
                         capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"vpc-manager netns {argv[0]}: {out.stderr.strip()}")
    return out.stdout.strip()


class Server:
    """The TCP server in a namespace."""

    def __init__(self, ns, ports):
        self.ns = ns
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, sys.executable, "-u", "-c", SERVER,
             *map(str, ports)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        if line != "ready":
            self.stop()
            raise RuntimeError(f"server in {ns}: {self.proc.stderr.read().strip()}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --- What the ACLs say --------------------------------------------------------------

def item_matches(item, proto, port, addr):
    iproto = item["protocol"].lower()
    if iproto not in ("all", proto):
        return False
    if proto in ("tcp", "udp") and iproto != "all" and item.get("startport") not in (None, ""):
        if not int(item["startport"]) <= port <= int(item.get("endport") or item["startport"]):
            return False
    if proto == "icmp" and iproto == "icmp":
        # Probes are echo requests (type 8, code 0).
        if int(item.get("icmptype", -1)) not in (-1, 8):
            return False
        if int(item.get("icmpcode", -1)) not in (-1, 0):
            return False
    cidrs = [c.strip() for c in (item.get("cidrlist") or "0.0.0.0/0").split(",") if c.strip()]
    return any(ipaddress.ip_address(addr) in ipaddress.ip_network(c, strict=False)
               for c in cidrs)


def first_match(side, direction, proto, port, addr):
    """The first item (by number) of the side's list in `direction` that
    matches: (item or None, whether the list has items in that direction)."""
    items = sorted((i for i in side["acl"] if i["traffictype"] == direction),
                   key=lambda i: int(i["number"]))
    for item in items:
        if item_matches(item, proto, port, addr):
            return item, True
    return None, bool(items)


def acl_verdict(src, dst, proto, port, src_ip, dst_ip):
    """Whether the router lets a new flow through, and why, the way the agent
    enforces ACLs: leaving a tier (or entering from a private gateway) walks the
    list's Egress items by destination (allowed when the list has none), then
    entering a tier (or leaving through a private gateway) walks its Ingress
    items by source (denied when none matches). The public side has no list."""
    if src["acl"] is not None:
        item, has_items = first_match(src, "Egress", proto, port, dst_ip)
        if item is not None and item["action"] != "Allow":
            return False, f"{src['list']} #{item['number']} denies egress"
        if item is None and has_items:
            return False, f"{src['list']}: no egress item matches"
    if dst["acl"] is None:
        return True, "to the public network, source NAT"
    item, _ = first_match(dst, "Ingress", proto, port, src_ip)
    if item is None:
        return False, f"{dst['list']}: no ingress item matches, denied"
    verb = "allows" if item["action"] == "Allow" else "denies"
    return item["action"] == "Allow", f"{dst['list']} #{item['number']} {verb}"


# --- Probes ---------------------------------------------------------------------------

def tcp_probe(ns, addr, port, source=None):
    argv = [sys.executable, "-c", CLIENT, addr, str(port), str(TCP_TIMEOUT)]
    if source:
        argv.append(source)
    out = netns_exec(ns, *argv, timeout=TCP_TIMEOUT + 10)
    return out.returncode == 0, out.stdout.strip() or None


def ping_probe(ns, addr, source=None):
    argv = ["ping", "-c", "3", "-i", "0.3", "-W", "1", "-q"]
    if source:
        argv += ["-I", source]
    out = netns_exec(ns, *argv, addr, timeout=15)
    return out.returncode == 0, None


def wait_for(what, check, timeout):
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.2)


# --- The demo -------------------------------------------------------------------------

class Demo:
    def __init__(self, api, args):
        self.api = api
        self.args = args
        self.vpc_id = None
        self.branch_id = None
        self.zone = None
        self.servers = []

    def step(self, text, fn):
        started = time.monotonic()
        result = fn()
        say(f"  {text} ({time.monotonic() - started:.1f} s)")
        return result

    def pick_zone(self):
        zones = self.api.listZones(fetch_list=True)
        if not zones:
            raise RuntimeError("the manager has no zone: start it with --bootstrap-zone")
        if self.args.zone:
            zones = [z for z in zones if self.args.zone in (z["id"], z["name"])]
            if not zones:
                raise RuntimeError(f"no zone {self.args.zone}")
        return zones[0]

    def acl_list(self, name, items, vpc_id=None):
        acl = self.api.createNetworkACLList(name=name, description=f"demo {name}",
                                            vpcid=vpc_id or self.vpc_id)
        acl = acl.get("networkacllist", acl)
        for number, item in enumerate(items, start=1):
            self.api.createNetworkACL(aclid=acl["id"], number=number * 10, **item)
        return acl

    def run(self):
        api, args = self.api, self.args
        cidr = ipaddress.ip_network(args.cidr)
        if cidr.prefixlen > 22:
            raise RuntimeError("--cidr must be at least a /22 (two /24 tiers)")
        subnets = list(cidr.subnets(new_prefix=24))
        web_net, db_net = subnets[1], subnets[2]
        self.zone = zone = self.pick_zone()
        say(f"demo: zone {zone['name']} ({zone['id']}), namespace prefix {args.prefix}")

        offering = api.listVPCOfferings(isdefault=True, fetch_list=True)[0]
        tier_offerings = api.listNetworkOfferings(forvpc=True, fetch_list=True)
        no_lb = [o for o in tier_offerings
                 if not any(s["name"] == "Lb" for s in o.get("service", []))]
        tier_offering = (no_lb or tier_offerings)[0]
        service_offering = api.listServiceOfferings(fetch_list=True)[0]
        template = api.listTemplates(templatefilter="featured", fetch_list=True)[0]
        ranges = api.listVlanIpRanges(zoneid=zone["id"], fetch_list=True)
        upstream_ip = ranges[0]["gateway"]

        say("Building, through the API:")
        vpc = self.step(f"createVPC demo {cidr}, router running", lambda: api.createVPC(
            name="demo", displaytext="demo", cidr=str(cidr), zoneid=zone["id"],
            vpcofferingid=offering["id"])["vpc"])
        self.vpc_id = vpc["id"]
        router = api.listRouters(vpcid=vpc["id"], listall=True, fetch_list=True)[0]
        snat_ip = api.listPublicIpAddresses(vpcid=vpc["id"], issourcenat=True, listall=True,
                                            fetch_list=True)[0]["ipaddress"]

        web_acl = self.step("ACL list web: tcp 80 from anywhere, ICMP from the VPC",
                            lambda: self.acl_list("web", [
                                dict(protocol="tcp", startport=80, endport=80,
                                     cidrlist="0.0.0.0/0", action="Allow",
                                     traffictype="Ingress"),
                                dict(protocol="icmp", icmptype=-1, icmpcode=-1,
                                     cidrlist=str(cidr), action="Allow",
                                     traffictype="Ingress"),
                            ]))
        db_acl = self.step(f"ACL list db: tcp 5432 from the web tier ({web_net})",
                           lambda: self.acl_list("db", [
                               dict(protocol="tcp", startport=5432, endport=5432,
                                    cidrlist=str(web_net), action="Allow",
                                    traffictype="Ingress"),
                           ]))
        onprem_net = ipaddress.ip_network("192.168.100.0/24")
        gw_acl = self.step("ACL list onprem: the VPC to and from the private gateway",
                           lambda: self.acl_list("onprem", [
                               dict(protocol="all", cidrlist=str(cidr), action="Allow",
                                    traffictype="Ingress"),
                               dict(protocol="all", cidrlist=str(cidr), action="Allow",
                                    traffictype="Egress"),
                           ]))

        def tier(name, net, acl):
            return api.createNetwork(
                name=name, displaytext=name, zoneid=zone["id"], vpcid=vpc["id"],
                networkofferingid=tier_offering["id"], gateway=str(net[1]),
                netmask=str(net.netmask), aclid=acl["id"])["network"]

        web = self.step(f"tier web {web_net}", lambda: tier("web", web_net, web_acl))
        db = self.step(f"tier db {db_net}", lambda: tier("db", db_net, db_acl))

        def vm(name, net):
            return api.deployVirtualMachine(
                zoneid=zone["id"], serviceofferingid=service_offering["id"],
                templateid=template["id"], networkids=net["id"], name=name)["virtualmachine"]

        web1 = self.step("VM web1 in web", lambda: vm("web1", web))
        db1 = self.step("VM db1 in db", lambda: vm("db1", db))

        public = self.step("public IP", lambda: api.associateIpAddress(
            vpcid=vpc["id"])["ipaddress"])
        pf_ip = public["ipaddress"]

        def forward(public_port, private):
            api.createPortForwardingRule(
                ipaddressid=public["id"], privateport=private, publicport=public_port,
                protocol="tcp", virtualmachineid=web1["id"], networkid=web["id"],
                openfirewall=False)

        self.step(f"port forwards {pf_ip}:8080 -> web1:80, {pf_ip}:2222 -> web1:22",
                  lambda: (forward(8080, 80), forward(2222, 22)))

        gw_ip, peer_ip = "172.16.100.2", "172.16.100.1"
        gateway = self.step(f"private gateway on VLAN {args.vlan}, {gw_ip}/24 via {peer_ip}",
                            lambda: api.createPrivateGateway(
                                vpcid=vpc["id"], ipaddress=gw_ip, gateway=peer_ip,
                                netmask="255.255.255.0", vlan=args.vlan,
                                aclid=gw_acl["id"])["privategateway"])
        self.step(f"static route {onprem_net} via the private gateway",
                  lambda: api.createStaticRoute(gatewayid=gateway["id"], cidr=str(onprem_net)))
        onprem_ns = self.step(
            "on-premises namespace behind the VLAN (vpc-manager netns onprem)",
            lambda: manager_cli(args, "onprem", "--zone", zone["id"], "--vlan", args.vlan,
                                "--address", f"{peer_ip}/24",
                                "--behind", f"{onprem_net[1]}/{onprem_net.prefixlen}",
                                "--route", f"{cidr}={gw_ip}"))
        upstream_ns = manager_cli(args, "upstream", "--zone", zone["id"])

        # The namespaces, from the API objects.
        web_ns = args.prefix + web1["instancename"]
        db_ns = args.prefix + db1["instancename"]
        web_ip = web1["nic"][0]["ipaddress"]
        db_ip = db1["nic"][0]["ipaddress"]
        onprem_ip = str(onprem_net[1])
        say("")
        say("Namespaces (ip netns exec NAME ...):")
        say(f"  router   {args.prefix}{router['name']}  ({router['state']}, source NAT {snat_ip})")
        say(f"  web1     {web_ns}  ({web_ip})")
        say(f"  db1      {db_ns}  ({db_ip})")
        say(f"  upstream {upstream_ns}  ({upstream_ip})")
        say(f"  on-prem  {onprem_ns}  ({onprem_ip})")

        # The VMs take their addresses by DHCP from the router.
        started = time.monotonic()
        for ns, ip, gw in ((web_ns, web_ip, web_net[1]), (db_ns, db_ip, db_net[1])):
            wait_for(f"{ns} to lease {ip}", lambda: f" {ip}/" in subprocess.run(
                ["ip", "-n", ns, "-4", "-o", "addr", "show"], capture_output=True,
                text=True).stdout, 60)
            wait_for(f"{ns} to reach its router", lambda: ping_probe(ns, str(gw))[0], 30)
        say(f"  both VMs leased their addresses by DHCP ({time.monotonic() - started:.1f} s)")
        # The upstream may still map the source NAT address to the MAC of an
        # earlier router that held it, until its neighbour entry fails; the
        # matrix starts once the VMs get through.
        started = time.monotonic()
        wait_for("the VMs to reach upstream", lambda: all(
            ping_probe(ns, upstream_ip)[0] for ns in (web_ns, db_ns)), 30)
        say(f"  both VMs reach upstream ({time.monotonic() - started:.1f} s)")

        for ns, ports in ((web_ns, [80, 22]), (db_ns, [5432, 22]), (upstream_ns, [7000]),
                          (onprem_ns, [9000])):
            self.servers.append(Server(ns, ports))

        sides = {
            "web": dict(list="web", acl=self.items(web_acl)),
            "db": dict(list="db", acl=self.items(db_acl)),
            "gw": dict(list="onprem", acl=self.items(gw_acl)),
            "public": dict(list=None, acl=None),
        }
        # (from, its namespace, side, source address; to, address probed, side,
        #  address behind it; protocol, port probed, port behind it; the address
        #  the other end should see)
        probes = [
            ("web1", web_ns, "web", web_ip, "db1", db_ip, "db", db_ip, "tcp", 5432, 5432, web_ip),
            ("web1", web_ns, "web", web_ip, "db1", db_ip, "db", db_ip, "tcp", 22, 22, web_ip),
            ("web1", web_ns, "web", web_ip, "db1", db_ip, "db", db_ip, "icmp", None, None, None),
            ("db1", db_ns, "db", db_ip, "web1", web_ip, "web", web_ip, "tcp", 80, 80, db_ip),
            ("db1", db_ns, "db", db_ip, "web1", web_ip, "web", web_ip, "tcp", 22, 22, db_ip),
            ("db1", db_ns, "db", db_ip, "web1", web_ip, "web", web_ip, "icmp", None, None, None),
            ("upstream", upstream_ns, "public", upstream_ip, "public IP", pf_ip, "web", web_ip,
             "tcp", 8080, 80, upstream_ip),
            ("upstream", upstream_ns, "public", upstream_ip, "public IP", pf_ip, "web", web_ip,
             "tcp", 2222, 22, upstream_ip),
            ("web1", web_ns, "web", web_ip, "upstream", upstream_ip, "public", upstream_ip,
             "tcp", 7000, 7000, snat_ip),
            ("db1", db_ns, "db", db_ip, "upstream", upstream_ip, "public", upstream_ip,
             "tcp", 7000, 7000, snat_ip),
            ("web1", web_ns, "web", web_ip, "on-prem", onprem_ip, "gw", onprem_ip,
             "tcp", 9000, 9000, web_ip),
            ("db1", db_ns, "db", db_ip, "on-prem", onprem_ip, "gw", onprem_ip,
             "icmp", None, None, None),
            ("on-prem", onprem_ns, "gw", onprem_ip, "web1", web_ip, "web", web_ip,
             "tcp", 80, 80, onprem_ip),
            ("on-prem", onprem_ns, "gw", onprem_ip, "db1", db_ip, "db", db_ip,
             "tcp", 5432, 5432, onprem_ip),
        ]
        say("")
        say("Connectivity, measured with real packets (a new flow each; a probe that "
            "disagrees is measured once more):")
        header = (f"  {'from':<9} {'to':<36} {'probe':<9} {'ACLs say':<9} {'measured':<9} "
                  f"{'seen as':<14} why")
        say(header)
        say("  " + "-" * (len(header) + 20))
        failures = 0
        for (src, src_ns, src_side, src_ip, dst, dst_ip, dst_side, real_ip, proto, port,
             real_port, seen_expected) in probes:
            expected, why = acl_verdict(sides[src_side], sides[dst_side], proto, real_port,
                                        src_ip, real_ip)
            # The on-premises hosts live on their loopback: probes leave from there.
            source = onprem_ip if src == "on-prem" else None
            for _ in range(2):
                if proto == "tcp":
                    ok, seen = tcp_probe(src_ns, dst_ip, port, source)
                else:
                    ok, seen = ping_probe(src_ns, dst_ip, source)
                if ok == expected:
                    break
            bad = ok != expected or bool(ok and seen_expected and seen != seen_expected)
            failures += bad
            probe = f"{proto}/{port}" if port else proto
            target = f"{dst} {dst_ip}" + (f" -> web1:{real_port}" if dst == "public IP" else "")
            yn = lambda b: "yes" if b else "no"
            say(f"  {src:<9} {target:<36} {probe:<9} {yn(expected):<9} "
                f"{yn(ok) + (' !!' if bad else ''):<9} {seen or '-':<14} {why}")
        say("")
        if failures:
            say(f"demo: {failures} probe(s) disagree with the ACLs")
            return False
        say("demo: the matrix matches the ACLs (upstream sees the VPC's source NAT "
            f"address {snat_ip}; on-premises sees the VMs' own addresses)")
        return self.site_to_site(offering, tier_offering, service_offering, template,
                                 cidr, web_ns, web_ip)

    def site_to_site(self, offering, tier_offering, service_offering, template, cidr,
                     web_ns, web_ip):
        """A branch VPC joined to the demo VPC by a site-to-site VPN, each the
        other's customer gateway; probes both ways through the tunnel."""
        api, args, zone = self.api, self.args, self.zone
        branch_cidr = ipaddress.ip_network(args.branch_cidr)
        branch_net = list(branch_cidr.subnets(new_prefix=24))[1]
        say("")
        say("Site-to-site VPN, through the API:")
        branch = self.step(f"createVPC branch {branch_cidr}", lambda: api.createVPC(
            name="branch", displaytext="branch", cidr=str(branch_cidr), zoneid=zone["id"],
            vpcofferingid=offering["id"])["vpc"])
        self.branch_id = branch["id"]
        acl = self.step(f"ACL list branch: tcp 9100 and ICMP from the demo VPC ({cidr})",
                        lambda: self.acl_list("branch", [
                            dict(protocol="tcp", startport=9100, endport=9100,
                                 cidrlist=str(cidr), action="Allow", traffictype="Ingress"),
                            dict(protocol="icmp", icmptype=-1, icmpcode=-1,
                                 cidrlist=str(cidr), action="Allow", traffictype="Ingress"),
                        ], vpc_id=branch["id"]))
        tier = self.step(f"tier office {branch_net}", lambda: api.createNetwork(
            name="office", displaytext="office", zoneid=zone["id"], vpcid=branch["id"],
            networkofferingid=tier_offering["id"], gateway=str(branch_net[1]),
            netmask=str(branch_net.netmask), aclid=acl["id"])["network"])
        vm = self.step("VM branch1 in office", lambda: api.deployVirtualMachine(
            zoneid=zone["id"], serviceofferingid=service_offering["id"],
            templateid=template["id"], networkids=tier["id"], name="branch1")["virtualmachine"])
        gateways = {}
        for name, vpc_id in (("demo", self.vpc_id), ("branch", branch["id"])):
            gateways[name] = self.step(f"createVpnGateway {name}", lambda: api.createVpnGateway(
                vpcid=vpc_id)["vpngateway"])
        psk = "demo and branch share this key"
        policies = dict(ikepolicy="aes128-sha256;modp2048", esppolicy="aes128-sha256",
                        ipsecpsk=psk, dpd=True)
        to_branch = self.step("customer gateway to-branch", lambda: api.createVpnCustomerGateway(
            name="demo-to-branch", gateway=gateways["branch"]["publicip"],
            cidrlist=str(branch_cidr), **policies)["vpncustomergateway"])
        to_demo = self.step("customer gateway to-demo", lambda: api.createVpnCustomerGateway(
            name="demo-to-demo", gateway=gateways["demo"]["publicip"],
            cidrlist=str(cidr), **policies)["vpncustomergateway"])
        self.step("createVpnConnection branch -> demo (passive)", lambda: api.createVpnConnection(
            s2svpngatewayid=gateways["branch"]["id"], s2scustomergatewayid=to_demo["id"],
            passive=True))
        started = time.monotonic()
        conn = self.step("createVpnConnection demo -> branch", lambda: api.createVpnConnection(
            s2svpngatewayid=gateways["demo"]["id"],
            s2scustomergatewayid=to_branch["id"])["vpnconnection"])
        wait_for("the VPN connection to be Connected", lambda: api.listVpnConnections(
            id=conn["id"], fetch_list=True)[0]["state"] == "Connected", 60)
        say(f"  the tunnel is Connected ({time.monotonic() - started:.1f} s after "
            "createVpnConnection)")
        branch_ns = args.prefix + vm["instancename"]
        branch_ip = vm["nic"][0]["ipaddress"]
        wait_for(f"{branch_ns} to lease {branch_ip}", lambda: f" {branch_ip}/" in subprocess.run(
            ["ip", "-n", branch_ns, "-4", "-o", "addr", "show"], capture_output=True,
            text=True).stdout, 60)
        self.servers.append(Server(branch_ns, [9100, 22]))
        say("")
        say(f"  {'from':<9} {'to':<36} {'probe':<9} {'expected':<9} {'measured':<9} "
            f"{'seen as':<14} why")
        failures = 0
        for src, src_ns, src_ip, dst, dst_ip, port, why in (
                ("web1", web_ns, web_ip, "branch1", branch_ip, 9100,
                 "through the tunnel, branch #10 allows"),
                ("branch1", branch_ns, branch_ip, "web1", web_ip, 80,
                 "through the tunnel, web #10 allows"),
                ("web1", web_ns, web_ip, "branch1", branch_ip, 22,
                 "through the tunnel, branch: no ingress item matches, denied")):
            expected = port != 22
            for _ in range(3):
                ok, seen = tcp_probe(src_ns, dst_ip, port)
                if ok == expected:
                    break
                time.sleep(0.5)
            bad = ok != expected or bool(ok and seen != src_ip)
            failures += bad
            yn = lambda b: "yes" if b else "no"
            say(f"  {src:<9} {dst + ' ' + dst_ip:<36} {'tcp/' + str(port):<9} "
                f"{yn(expected):<9} {yn(ok) + (' !!' if bad else ''):<9} {seen or '-':<14} {why}")
        say("")
        if failures:
            say(f"demo: {failures} site-to-site probe(s) disagree")
            return False
        say("demo: the site-to-site tunnel carries the VMs' own addresses both ways")
        return True

    def items(self, acl):
        return self.api.listNetworkACLs(aclid=acl["id"], listall=True, fetch_list=True)

    def stop_servers(self):
        for s in self.servers:
            s.stop()
        self.servers = []


def teardown(api, args, vpc_id):
    """Removes a VPC and everything in it, in the order CloudStack needs, and
    the on-premises namespaces of its private gateways. Returns the errors."""
    errors = []

    def attempt(what, fn):
        try:
            fn()
        except Exception as e:  # noqa: BLE001 - every step is attempted
            errors.append(f"{what}: {e}")

    vpcs = api.listVPCs(id=vpc_id, listall=True, fetch_list=True)
    if not vpcs:
        return [f"no VPC {vpc_id}"]
    zone_id = vpcs[0]["zoneid"]
    listall = dict(listall=True, fetch_list=True)
    # Its site-to-site VPN: connections, the VPN gateway, then the customer
    # gateways those connections used (the branch's teardown takes its own).
    customer_gateways = set()
    for conn in api.listVpnConnections(vpcid=vpc_id, **listall):
        customer_gateways.add(conn["s2scustomergatewayid"])
        attempt("deleteVpnConnection", lambda: api.deleteVpnConnection(id=conn["id"]))
    for gw in api.listVpnGateways(vpcid=vpc_id, **listall):
        attempt("deleteVpnGateway", lambda: api.deleteVpnGateway(id=gw["id"]))
    for cg in customer_gateways:
        attempt("deleteVpnCustomerGateway", lambda: api.deleteVpnCustomerGateway(id=cg))
    for gw in api.listPrivateGateways(vpcid=vpc_id, **listall):
        attempt("the on-premises namespace", lambda: manager_cli(
            args, "remove-onprem", "--zone", zone_id, "--vlan", str(gw["vlan"])))
        for route in api.listStaticRoutes(gatewayid=gw["id"], **listall):
            attempt("deleteStaticRoute", lambda: api.deleteStaticRoute(id=route["id"]))
        attempt("deletePrivateGateway", lambda: api.deletePrivateGateway(id=gw["id"]))
    for ip in api.listPublicIpAddresses(vpcid=vpc_id, **listall):
        if ip.get("issourcenat"):
            continue
        for rule in api.listPortForwardingRules(ipaddressid=ip["id"], **listall):
            attempt("deletePortForwardingRule",
                    lambda: api.deletePortForwardingRule(id=rule["id"]))
        attempt("disassociateIpAddress", lambda: api.disassociateIpAddress(id=ip["id"]))
    for vm in api.listVirtualMachines(vpcid=vpc_id, **listall):
        attempt("destroyVirtualMachine",
                lambda: api.destroyVirtualMachine(id=vm["id"], expunge=True))
    for tier in api.listNetworks(vpcid=vpc_id, **listall):
        attempt("deleteNetwork", lambda: api.deleteNetwork(id=tier["id"]))
    for acl in api.listNetworkACLLists(vpcid=vpc_id, **listall):
        if acl.get("vpcid") == vpc_id:
            attempt("deleteNetworkACLList", lambda: api.deleteNetworkACLList(id=acl["id"]))
    attempt("deleteVPC", lambda: api.deleteVPC(id=vpc_id))
    return errors


def main():
    args = parse_args()
    api = connect(args.config)
    if args.teardown:
        errors = teardown(api, args, args.teardown)
        for e in errors:
            say(f"demo: teardown: {e}")
        sys.exit(1 if errors else 0)

    demo = Demo(api, args)
    status = 1
    try:
        status = 0 if demo.run() else 1
    except CloudStackApiException as e:
        say(f"demo: the API refused: {e.error.get('errortext', e)} ({e.error.get('errorcode')})")
        status = 2
    except (RuntimeError, subprocess.TimeoutExpired) as e:
        say(f"demo: {e}")
        status = 1
    finally:
        demo.stop_servers()
        if demo.vpc_id and args.keep:
            for kept in filter(None, (demo.vpc_id, demo.branch_id)):
                say(f"demo: kept VPC {kept}; remove it with "
                    f"scripts/demo.sh --teardown {kept} --prefix {args.prefix} "
                    f"--config {args.config}")
        elif demo.vpc_id:
            started = time.monotonic()
            errors = teardown(api, args, demo.vpc_id)
            if demo.branch_id:
                errors += teardown(api, args, demo.branch_id)
            for e in errors:
                say(f"demo: teardown: {e}")
            if errors:
                status = status or 1
            else:
                say(f"demo: torn down ({time.monotonic() - started:.1f} s)")
    sys.exit(status)


if __name__ == "__main__":
    main()
