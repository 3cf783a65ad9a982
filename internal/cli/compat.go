package cli

import (
	"log/slog"
	"strings"
)

// applyCompat applies the deprecated -o items, in order, over the regular
// options (they win regardless of their position on the command line).
func applyCompat(o *Options) error {
	for _, v := range o.Compat {
		for item := range strings.SplitSeq(v, ",") {
			if err := applyCompatItem(o, item); err != nil {
				return err
			}
		}
	}
	return nil
}

func applyCompatItem(o *Options, item string) error {
	badArg := func() error { return usageError("Invalid compat argument '-o %s'", item) }
	if !strings.Contains(item, "=") {
		return applyCompatFlag(o, item, badArg)
	}
	kv := strings.Split(item, "=")
	if len(kv) != 2 {
		return badArg()
	}
	key, val := kv[0], kv[1]
	badVal := func() error { return usageError("Invalid compat value '%s' for '-o %s'", val, key) }
	switch key {
	case "source":
		o.SharedDir, o.SharedDirSet = val, true
		o.given["shared-dir"] = true
	case "cache":
		c, ok := map[string]CachePolicy{"auto": CacheAuto, "always": CacheAlways, "none": CacheNever, "metadata": CacheMetadata}[val]
		if !ok {
			return badVal()
		}
		o.Cache = c
		o.given["cache"] = true
	case "loglevel":
		l, ok := map[string]slog.Level{"debug": slog.LevelDebug, "info": slog.LevelInfo, "warn": slog.LevelWarn, "err": slog.LevelError}[val]
		if !ok {
			return badVal()
		}
		o.LogLevel = l
		o.given["log-level"] = true
	case "sandbox":
		m, ok := map[string]SandboxMode{"namespace": SandboxNamespace, "chroot": SandboxChroot}[val]
		if !ok {
			return badVal()
		}
		o.Sandbox = m
		o.given["sandbox"] = true
	case "xattrmap":
		// The rule language is not implemented yet; the option is refused
		// later (Options.Unsupported), whatever its value.
		o.Xattrmap, o.XattrmapSet = val, true
		o.given["xattrmap"] = true
	case "modcaps":
		o.Modcaps, o.ModcapsSet = val, true
		o.given["modcaps"] = true
	default:
		return badArg()
	}
	return nil
}

func applyCompatFlag(o *Options, item string, badArg func() error) error {
	flags := map[string]struct {
		p  *bool
		v  bool
		as string // long option it stands for
	}{
		"xattr":              {&o.Xattr, true, "xattr"},
		"no_xattr":           {&o.Xattr, false, "xattr"},
		"readdirplus":        {&o.NoReaddirplus, false, "no-readdirplus"},
		"no_readdirplus":     {&o.NoReaddirplus, true, "no-readdirplus"},
		"writeback":          {&o.Writeback, true, "writeback"},
		"no_writeback":       {&o.Writeback, false, "writeback"},
		"allow_direct_io":    {&o.AllowDirectIO, true, "allow-direct-io"},
		"no_allow_direct_io": {&o.AllowDirectIO, false, "allow-direct-io"},
		"killpriv_v2":        {&o.KillprivV2, true, "killpriv-v2"},
		"no_killpriv_v2":     {&o.KillprivV2, false, "killpriv-v2"},
		"posix_acl":          {&o.PosixACL, true, "posix-acl"},
		"no_posix_acl":       {&o.PosixACL, false, "posix-acl"},
		"security_label":     {&o.SecurityLabel, true, "security-label"},
		"no_security_label":  {&o.SecurityLabel, false, "security-label"},
	}
	switch item {
	case "announce_submounts", "no_posix_lock", "no_flock":
		// Accepted without effect: submounts are announced by default and
		// POSIX and BSD locks are never offered to the guest.
		return nil
	}
	f, ok := flags[item]
	if !ok {
		return badArg()
	}
	*f.p = f.v
	o.given[f.as] = true
	return nil
}
