// Command recur is the user's CLI: train (local mode), sample, eval, export.
package main
