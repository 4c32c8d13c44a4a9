-- Site-to-site VPN (CloudStack's s2s_vpn_gateway, s2s_customer_gateway,
-- s2s_vpn_connection). Rows are soft-deleted through `removed`; the unique
-- indexes hold for live rows only.

-- A VPC's VPN gateway: the VPC's source NAT address terminates its tunnels.
CREATE TABLE s2s_vpn_gateway (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                TEXT    NOT NULL UNIQUE,
    vpc_id              INTEGER NOT NULL REFERENCES vpc (id),
    addr_id             INTEGER NOT NULL REFERENCES user_ip_address (id),
    account_id          INTEGER NOT NULL REFERENCES account (id),
    domain_id           INTEGER NOT NULL REFERENCES domain (id),
    created             INTEGER NOT NULL,
    removed             INTEGER
);
CREATE UNIQUE INDEX s2s_vpn_gateway_vpc_live ON s2s_vpn_gateway (vpc_id) WHERE removed IS NULL;

-- The far end of a tunnel, as its owner describes it. `ipsec_psk` is the
-- router's input on every resync, which reads the state without the
-- database key: it is kept as the router gets it, like the rest of the
-- router's state, and no response shows it to other accounts.
CREATE TABLE s2s_customer_gateway (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                TEXT    NOT NULL UNIQUE,
    name                TEXT    NOT NULL,
    gateway_ip          TEXT    NOT NULL,
    guest_cidr_list     TEXT    NOT NULL,
    ipsec_psk           TEXT    NOT NULL,
    ike_policy          TEXT    NOT NULL,
    esp_policy          TEXT    NOT NULL,
    ike_lifetime        INTEGER NOT NULL,
    esp_lifetime        INTEGER NOT NULL,
    dpd                 INTEGER NOT NULL DEFAULT 0 CHECK (dpd IN (0, 1)),
    force_encap         INTEGER NOT NULL DEFAULT 0 CHECK (force_encap IN (0, 1)),
    split_connections   INTEGER NOT NULL DEFAULT 0 CHECK (split_connections IN (0, 1)),
    ike_version         TEXT    NOT NULL,
    account_id          INTEGER NOT NULL REFERENCES account (id),
    domain_id           INTEGER NOT NULL REFERENCES domain (id),
    created             INTEGER NOT NULL,
    removed             INTEGER
);
CREATE UNIQUE INDEX s2s_customer_gateway_name_live
    ON s2s_customer_gateway (account_id, name) WHERE removed IS NULL;

-- A tunnel between a VPN gateway and a customer gateway. `error` says why
-- the state is Error (empty otherwise); `resets` counts resetVpnConnection
-- and customer gateway updates, so the router sees a reset as a change of
-- its desired state.
CREATE TABLE s2s_vpn_connection (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                TEXT    NOT NULL UNIQUE,
    vpn_gateway_id      INTEGER NOT NULL REFERENCES s2s_vpn_gateway (id),
    customer_gateway_id INTEGER NOT NULL REFERENCES s2s_customer_gateway (id),
    passive             INTEGER NOT NULL DEFAULT 0 CHECK (passive IN (0, 1)),
    state               TEXT    NOT NULL,
    error               TEXT    NOT NULL DEFAULT '',
    resets              INTEGER NOT NULL DEFAULT 0,
    account_id          INTEGER NOT NULL REFERENCES account (id),
    domain_id           INTEGER NOT NULL REFERENCES domain (id),
    created             INTEGER NOT NULL,
    removed             INTEGER
);
CREATE UNIQUE INDEX s2s_vpn_connection_pair_live
    ON s2s_vpn_connection (vpn_gateway_id, customer_gateway_id) WHERE removed IS NULL;
CREATE INDEX s2s_vpn_connection_customer ON s2s_vpn_connection (customer_gateway_id, removed);
