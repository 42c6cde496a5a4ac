// Package routing decides where statements go: shard functions, routing
// plans and result merging. It is pure Go (no cgo) and does not import
// parser; proxy turns a parsed statement into a routing plan.
package routing
