// Package config loads pgshard's YAML configuration, applies the documented
// defaults, validates it (reporting every error with its YAML path) and turns
// it into the Options of the packages that run the proxy.
//
// config keeps no global state, starts nothing and does not log: the caller
// (cmd/pgshard) loads a Config and hands each package its own Options.
// Passwords never appear in its errors, and a Config prints them redacted.
// docs/config.md is the reference for the file format; keep it, the defaults
// in config.go and proxy.yaml.example in step.
package config
