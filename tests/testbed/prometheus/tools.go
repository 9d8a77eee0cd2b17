//go:build tools

// Pins the Prometheus module that provides promtool; built by scripts/testbed.
package tools

import _ "github.com/prometheus/prometheus/cmd/promtool"
