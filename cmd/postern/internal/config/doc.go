// Package config reads postern's settings from flags, environment variables
// (POSTERN_*) and a YAML file, in that order of precedence over the defaults,
// and checks them. It knows nothing of how the settings are used: the command
// in cmd/postern turns a valid Config into the gateway's Options and Parts.
package config
