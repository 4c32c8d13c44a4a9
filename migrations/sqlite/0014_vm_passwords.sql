-- VM services, second part (issue 14): password-enabled templates, the VM's
-- one-time password, and registered user data (CloudStack's user_data table)
-- that VMs may be deployed with, with the values of its parameters.
-- Keep in step with the other backend's 0014_vm_passwords.sql.

-- CloudStack's `enable_password`: VMs of this template take a password from
-- the router's password server; deployVirtualMachine and
-- resetPasswordForVirtualMachine make one.
ALTER TABLE vm_template ADD COLUMN enable_password INTEGER NOT NULL DEFAULT 0 CHECK (enable_password IN (0, 1));

-- Named, reusable user data of an account (registerUserData): base64 as
-- CloudStack keeps it, with the comma-separated names of its parameters.
CREATE TABLE user_data (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                TEXT    NOT NULL UNIQUE,
    name                TEXT    NOT NULL,
    account_id          INTEGER NOT NULL REFERENCES account (id),
    domain_id           INTEGER NOT NULL REFERENCES domain (id),
    user_data           TEXT    NOT NULL,
    params              TEXT    NOT NULL DEFAULT '',
    created             INTEGER NOT NULL,
    removed             INTEGER
);
CREATE UNIQUE INDEX user_data_name_live ON user_data (account_id, name) WHERE removed IS NULL;

-- The VM's password, sealed with the database key (never in clear), until a
-- reset replaces it; the registered user data it was deployed with and the
-- values of that user data's parameters (a JSON object), which the router
-- serves as metadata files.
ALTER TABLE vm_user_data ADD COLUMN password TEXT NOT NULL DEFAULT '';
ALTER TABLE vm_user_data ADD COLUMN user_data_id INTEGER REFERENCES user_data (id);
ALTER TABLE vm_user_data ADD COLUMN user_data_details TEXT NOT NULL DEFAULT '';
