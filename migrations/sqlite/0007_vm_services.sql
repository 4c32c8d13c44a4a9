-- VM services (issue 14): SSH key pairs of accounts, and what each VM reads
-- from its router (user data, public keys). Keep in step with the other
-- backend's 0007_vm_services.sql.

-- CloudStack's ssh_keypairs: a public key registered (or created) under a
-- name unique in its account; the fingerprint as listSSHKeyPairs prints it.
CREATE TABLE ssh_keypairs (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                TEXT    NOT NULL UNIQUE,
    name                TEXT    NOT NULL,
    account_id          INTEGER NOT NULL REFERENCES account (id),
    domain_id           INTEGER NOT NULL REFERENCES domain (id),
    public_key          TEXT    NOT NULL,
    fingerprint         TEXT    NOT NULL,
    created             INTEGER NOT NULL,
    UNIQUE (account_id, name)
);

-- What a VM reads from its router besides what its row says: the user data
-- (base64, as CloudStack keeps it) and the public keys of the key pairs it
-- was deployed or reset with (copied: deleting a key pair leaves VMs
-- alone, as in CloudStack), one per line, with the key pairs' names.
CREATE TABLE vm_user_data (
    vm_id               INTEGER PRIMARY KEY REFERENCES vm_instance (id),
    user_data           TEXT    NOT NULL DEFAULT '',
    public_keys         TEXT    NOT NULL DEFAULT '',
    keypair_names       TEXT    NOT NULL DEFAULT ''
);
