// Pins Traefik v3.6 (v3.7.11, the chart's, does not build from its module zip here: it
// replaces a nested module the zip lacks and needs a fork the proxy refuses), built by scripts/testbed
// to put the forward-auth middleware in front of serve in the tests. Its own replace
// directives are not inherited by a dependent module, so the build runs in a copy of it.
module stackspin.test/testbed/traefik

go 1.26.0

require github.com/traefik/traefik/v3 v3.6.12 // indirect
