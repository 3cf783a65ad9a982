package logging

import (
	"fmt"
	"io"
	"log/slog"
	"strings"
)

// FilterFromEnv interprets spec, the value of the RUST_LOG environment
// variable, the way the reference daemon's logger does, for records whose
// target is Target:
//
//   - the part before an optional '/' is a comma-separated list of
//     directives "level", "name" or "name=level" (levels as in ParseLevel);
//     a bare name or "name=" means every level;
//   - of the directives whose name is empty or a prefix of Target, the one
//     with the longest name decides the level; if none applies, nothing is
//     written;
//   - a list without any valid directive means level error;
//   - the part after '/' keeps only messages that contain it.
//
// Malformed directives are reported on warn and skipped.
func FilterFromEnv(spec string, warn io.Writer) Filter {
	mods, contains, hasFilter := strings.Cut(spec, "/")
	if hasFilter && strings.Contains(contains, "/") {
		fmt.Fprintf(warn, "warning: invalid logging spec '%s', ignoring it (too many '/'s)\n", spec)
		return Filter{Level: slog.LevelError}
	}
	type directive struct {
		name  string
		level slog.Level
	}
	var dirs []directive
	for d := range strings.SplitSeq(mods, ",") {
		d = strings.TrimSpace(d)
		if d == "" {
			continue
		}
		parts := strings.Split(d, "=")
		switch len(parts) {
		case 1:
			if l, ok := ParseLevel(parts[0]); ok {
				dirs = append(dirs, directive{"", l})
			} else {
				dirs = append(dirs, directive{parts[0], LevelTrace})
			}
		case 2:
			lv := strings.TrimSpace(parts[1])
			if lv == "" {
				dirs = append(dirs, directive{parts[0], LevelTrace})
				continue
			}
			l, ok := ParseLevel(lv)
			if !ok {
				fmt.Fprintf(warn, "warning: invalid logging spec '%s', ignoring it\n", lv)
				continue
			}
			dirs = append(dirs, directive{parts[0], l})
		default:
			fmt.Fprintf(warn, "warning: invalid logging spec '%s', ignoring it\n", d)
		}
	}
	f := Filter{Level: slog.LevelError, Contains: contains}
	if len(dirs) == 0 {
		return f
	}
	best := -1
	f.Level = LevelOff
	for _, d := range dirs {
		if !strings.HasPrefix(Target, d.name) || len(d.name) < best {
			continue
		}
		// Among equally long names the later directive wins.
		best = len(d.name)
		f.Level = d.level
	}
	return f
}
