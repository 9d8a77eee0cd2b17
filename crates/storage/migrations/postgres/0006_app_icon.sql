-- An image for the app's tile in the Dashboard (https; the tile shows the name's initial
-- without one).
ALTER TABLE apps ADD COLUMN icon_url TEXT;
