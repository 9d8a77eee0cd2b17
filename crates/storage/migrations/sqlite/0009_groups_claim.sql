-- How the app wants the `groups` claim: 'role' (["admin"] or ["user"]) or 'role_and_user'
-- (["admin", "user"] for admins), for apps that check one access value only (HedgeDoc).
ALTER TABLE apps ADD COLUMN groups_claim TEXT NOT NULL DEFAULT 'role'
    CHECK (groups_claim IN ('role', 'role_and_user'));
