//go:build tools

// Package tools pins the registry's module so `go build` can name its main package.
package tools

import _ "github.com/distribution/distribution/v3/cmd/registry"
