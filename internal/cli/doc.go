// Package cli parses the virtiofsd command line.
//
// The accepted syntax and the diagnostics follow the reference daemon
// (virtiofsd 1.13, whose parser is clap 4): long options take a value after
// '=' or as the next argument (--inode-file-handles only with '='), short
// options may be clustered (-df, -ofoo, -o=foo), the last occurrence of a
// single-valued option wins, list options accumulate, and usage errors print
// "error: ..." in the reference's wording and exit with status 2. A value
// given as a separate argument is checked when the next known option is
// reached or at the end of the line, an inline value at once; this order
// decides which error is reported first, exactly as in the reference.
//
// Parse only checks syntax and the cross-option rules that the reference
// checks while parsing; it does not touch the file system. Whether an option
// is implemented by this daemon is decided by Options.Unsupported, so that
// the caller can report it after logging is set up.
package cli
