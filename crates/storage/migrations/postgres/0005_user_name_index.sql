-- Sorting the users table by name (Dashboard, API) without sorting every row each time;
-- id is the tie-break of that order, so it is part of the index.
CREATE INDEX users_name_lower ON users (lower(name), id);
