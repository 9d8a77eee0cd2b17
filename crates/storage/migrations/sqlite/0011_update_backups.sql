-- The version an update backup was taken before (reason 'update'): the update's record, so a
-- bad update is undone by restoring it.
ALTER TABLE backups ADD COLUMN for_version TEXT;
