//go:build tools

// Pins the Alertmanager module; built by scripts/testbed.
package tools

import (
	_ "github.com/prometheus/alertmanager/cmd/alertmanager"
	_ "github.com/prometheus/alertmanager/cmd/amtool"
)
