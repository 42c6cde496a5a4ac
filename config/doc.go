// Package config loads pgshard's YAML configuration, applies the documented
// defaults, validates it (reporting every error with its YAML path) and turns
// it into the Options of the packages that run the proxy.
package config
