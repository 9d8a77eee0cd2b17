-- The users list: natural-order sort keys ("user2" before "user10"), computed by the
-- application (stackspin_domain::user::natural_key) and backfilled at start-up, and when
-- each person last signed in.
ALTER TABLE users ADD COLUMN email_sort TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN name_sort TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN last_login_at TIMESTAMPTZ;
CREATE INDEX users_email_sort ON users (email_sort, id);
CREATE INDEX users_name_sort ON users (name_sort, id);
