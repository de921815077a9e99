-- More ways to be a guest (SPEC §13): claiming a Firebase anonymous account, and
-- claim codes that bring a guest (or anonymous account) to another device.
--
-- An anonymous account's data lives under its uid (users, sessions.user_id) like
-- any user's. When a signed-in account claims it (register with X-Anonymous-Token
-- or a claim code), its sessions move to the claimer, and its users row stays as
-- the record of the claim: claimed_by names the claimer, and create_session,
-- submit_response and get_visitor refuse that uid with guest_claimed from then on
-- (as guests.claimed_by does for a guest key). Its visitor number moves with its
-- sessions (taken by the claimer, or folded into the claimer's in visitor_merges),
-- so a claimed users row has none.
ALTER TABLE users
    ADD COLUMN claimed_by TEXT REFERENCES users(id) ON DELETE SET NULL,
    ADD COLUMN claimed_at TIMESTAMPTZ;
CREATE INDEX users_claimed_by_idx ON users (claimed_by) WHERE claimed_by IS NOT NULL;

-- One claim code per visitor (a guest or an anonymous user): a new code replaces
-- the visitor's earlier one. Only the SHA-256 of the code is kept. A code is single
-- use: used_at and used_by say when and by whom it was redeemed (a repeat by the
-- same account is harmless; anyone else's is refused). The row goes with its
-- visitor (ON DELETE CASCADE) and with the erasure of the account that used it.
CREATE TABLE claim_codes (
    code_hash  BYTEA PRIMARY KEY,
    guest_id   UUID UNIQUE REFERENCES guests(id) ON DELETE CASCADE,
    user_id    TEXT UNIQUE REFERENCES users(id) ON DELETE CASCADE,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    expires_at TIMESTAMPTZ NOT NULL,
    used_at    TIMESTAMPTZ,
    used_by    TEXT,
    CONSTRAINT claim_codes_code_hash_is_sha256 CHECK (octet_length(code_hash) = 32),
    CONSTRAINT claim_codes_one_visitor CHECK ((guest_id IS NULL) <> (user_id IS NULL))
);
CREATE INDEX claim_codes_used_by_idx ON claim_codes (used_by) WHERE used_by IS NOT NULL;

-- Wrong claim codes per signed-in account: the times of its recent failed tries
-- (at most the limit, those of the rolling window). Kept here, not in an
-- instance's memory, so the limit holds across every function instance. No
-- foreign key: a try is recorded even when the register that made it rolls back.
CREATE TABLE claim_code_attempts (
    user_id   TEXT PRIMARY KEY,
    failed_at TIMESTAMPTZ[] NOT NULL DEFAULT '{}'
);

-- What the functions do with them: create and replace codes, redeem them, count
-- tries; never delete. The erasure role deletes them with the visitor.
GRANT SELECT, INSERT, UPDATE ON claim_codes, claim_code_attempts TO visitor_functions;
GRANT DELETE ON claim_codes, claim_code_attempts TO visitor_erasure;
