//go:build tools

// Pins the Prometheus module that provides promtool and the server; built by scripts/testbed.
package tools

import (
	_ "github.com/prometheus/prometheus/cmd/prometheus"
	_ "github.com/prometheus/prometheus/cmd/promtool"
)
