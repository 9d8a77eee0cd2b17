//go:build tools

// Pins node_exporter; built by scripts/testbed.
package tools

import _ "github.com/prometheus/node_exporter"
